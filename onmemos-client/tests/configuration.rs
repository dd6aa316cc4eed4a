//! Bad client configuration is refused before any request: URLs, keys, and `.env` files
//! (read from the current directory, which is why this binary holds a single test).

use onmemos_client::{Client, ErrorKind};

fn refused(builder: onmemos_client::ClientBuilder) -> String {
    let e = builder
        .build()
        .err()
        .unwrap_or_else(|| panic!("a bad configuration was accepted"));
    assert_eq!(e.kind(), ErrorKind::Configuration);
    e.message().to_owned()
}

#[test]
fn bad_urls_keys_and_env_files_are_refused_before_any_request() {
    for (url, says) in [
        ("ftp://example.com", "http:// or https://"),
        ("127.0.0.1:8080", "http:// or https://"),
        ("http://", "http:// or https://"),
        ("http://:8080", "is not a URL"),
        ("http://exa mple.com", "is not a URL"),
    ] {
        let message = refused(Client::builder().base_url(url));
        assert!(message.contains(says), "{url}: {message}");
    }
    for key in ["", "onm_with space", "onm_line\nbreak"] {
        let message = refused(Client::builder().api_key(key));
        assert!(message.contains("API key"), "{key:?}: {message}");
    }

    // `.env` files: this test owns the process's working directory.
    assert!(
        std::env::var_os("ONMEMOS_API_KEY").is_none() && std::env::var_os("ONMEMOS_URL").is_none(),
        "run this test without ONMEMOS_API_KEY and ONMEMOS_URL in the environment"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let malformed = dir.path().join("malformed");
    std::fs::create_dir(&malformed).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(malformed.join(".env"), "this line is not KEY=value\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::env::set_current_dir(&malformed).unwrap_or_else(|e| panic!("{e}"));
    let e = Client::from_env()
        .err()
        .unwrap_or_else(|| panic!("a malformed .env was accepted"));
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.message().contains(".env"), "{}", e.message());

    let keyless = dir.path().join("keyless");
    std::fs::create_dir(&keyless).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(keyless.join(".env"), "ONMEMOS_URL=http://127.0.0.1:9\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::env::set_current_dir(&keyless).unwrap_or_else(|e| panic!("{e}"));
    let e = Client::from_env()
        .err()
        .unwrap_or_else(|| panic!("a .env without a key was accepted"));
    assert!(e.message().contains("ONMEMOS_API_KEY"), "{}", e.message());

    // With the key added the same directory configures a client, for the URL of the file.
    std::fs::write(
        keyless.join(".env"),
        "ONMEMOS_URL=http://127.0.0.1:9\nONMEMOS_API_KEY=onm_from_the_file\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = Client::from_env().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.base_url(), "http://127.0.0.1:9");
    // The file was read, not loaded: the process's environment is as it was.
    assert!(
        std::env::var_os("ONMEMOS_URL").is_none() && std::env::var_os("ONMEMOS_API_KEY").is_none(),
        "from_env changed the process environment"
    );
}
