//! `StorageProvider` implementations: [`LocalStorage`], the local file system (feature
//! `local-storage`, the embedded default), whose tree local sessions write into and which is
//! therefore read as hostile input; and [`ObjectStorage`] over the `object_store` crate for
//! memory, S3 (`s3`), GCS (`gcs`) and Azure Blob (`azure`).

mod cloud;
#[cfg(feature = "local-storage")]
mod local;
mod object;

#[cfg(feature = "local-storage")]
pub use local::LocalStorage;
pub use object::ObjectStorage;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use onmemos_core::ports::StorageProvider;
use onmemos_core::{Error, Result};

/// Options of a store, passed to the `object_store` builder of its scheme under the same keys
/// (`endpoint`, `allow_http`, `region`, `access_key_id`, `base_url`, `account_name`,
/// `use_emulator`…). Credentials not given here come from the environment, the cloud's usual
/// way (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub type StorageOptions = BTreeMap<String, String>;

/// Opens the object store named by `url`:
/// - `file://` — the local file system under `data_dir/storage`; `file:///abs/dir` — under that
///   directory;
/// - `memory://` — in memory (gone when the process ends);
/// - `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` — a cloud bucket,
///   optionally under a prefix, configured by `options` and the environment.
///
/// An unknown scheme, one whose feature is off, or an option the store does not know is a
/// configuration error naming it.
pub fn connect(
    url: &str,
    options: &StorageOptions,
    data_dir: &Path,
) -> Result<Arc<dyn StorageProvider>> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::configuration(format!(
            "storage_url {url:?} has no scheme: expected file://, memory://, s3://, gs:// or az://"
        ))
    })?;
    match scheme {
        "memory" => {
            reject_options(url, options)?;
            Ok(Arc::new(ObjectStorage::memory()))
        }
        "file" => {
            #[cfg(feature = "local-storage")]
            {
                reject_options(url, options)?;
                let dir = if rest.is_empty() {
                    data_dir.join("storage")
                } else if rest.starts_with('/') {
                    std::path::PathBuf::from(rest)
                } else {
                    return Err(Error::configuration(format!(
                        "storage_url {url:?}: expected file:// or file:///absolute/dir"
                    )));
                };
                Ok(Arc::new(LocalStorage::open(&dir)?))
            }
            #[cfg(not(feature = "local-storage"))]
            {
                let _ = (rest, data_dir);
                Err(crate::feature_off("local-storage", url))
            }
        }
        "s3" | "gs" | "az" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::configuration(format!(
                    "storage_url {url:?} names no bucket: expected {scheme}://bucket[/prefix]"
                )));
            }
            cloud::connect(scheme, url, bucket, prefix.trim_matches('/'), options)
        }
        _ => Err(Error::configuration(format!(
            "unknown storage URL scheme `{scheme}` in {url:?}: expected file://, memory://, s3://, gs:// or az://"
        ))),
    }
}

fn reject_options(url: &str, options: &StorageOptions) -> Result<()> {
    match options.keys().next() {
        None => Ok(()),
        Some(key) => Err(Error::configuration(format!(
            "storage option `{key}` does not apply to {url:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str, options: &StorageOptions) -> String {
        match connect(url, options, Path::new("/tmp")) {
            Ok(store) => panic!("{url} was accepted as {store:?}"),
            Err(e) => {
                assert_eq!(e.kind(), onmemos_core::ErrorKind::Configuration, "{e}");
                e.message().to_owned()
            }
        }
    }

    #[test]
    fn bad_urls_are_configuration_errors_naming_what_is_wrong() {
        let none = StorageOptions::new();
        assert!(refused("ftp://x", &none).contains("`ftp`"));
        assert!(refused("nothing", &none).contains("no scheme"));
        assert!(refused("s3://", &none).contains("names no bucket"));
        assert!(refused("file://relative", &none).contains("absolute"));
        let options = StorageOptions::from([("endpoint".into(), "http://x".into())]);
        assert!(refused("memory://", &options).contains("`endpoint`"));
    }

    #[test]
    fn memory_and_local_stores_open() {
        let none = StorageOptions::new();
        let memory = connect("memory://", &none, Path::new("/tmp"))
            .unwrap_or_else(|e| panic!("memory: {e}"));
        assert_eq!(memory.capabilities().name, "memory");
        #[cfg(feature = "local-storage")]
        {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let local =
                connect("file://", &none, dir.path()).unwrap_or_else(|e| panic!("local: {e}"));
            assert_eq!(local.capabilities().name, "local");
            assert!(dir.path().join("storage").is_dir());
        }
    }
}
