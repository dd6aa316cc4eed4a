//! Name validation as `k8s.io/apimachinery/pkg/util/validation` does it.

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `name` is not an RFC 1123 label (at most 63 characters), if it is not.
pub fn dns_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        Some("must be no more than 63 characters".into())
    } else if !is_label(name) {
        Some(LABEL_MSG.into())
    } else {
        None
    }
}

/// Why `name` is not an RFC 1123 subdomain (at most 253 characters), if it is not.
pub fn dns_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        Some("must be no more than 253 characters".into())
    } else if name.is_empty() || !name.split('.').all(is_label) {
        Some(SUBDOMAIN_MSG.into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["a", "web-1", "0abc"] {
            assert_eq!(dns_label(ok), None, "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"x".repeat(64)] {
            assert!(dns_label(bad).is_some(), "{bad}");
        }
        for ok in ["a.b", "web-1.example.com"] {
            assert_eq!(dns_subdomain(ok), None, "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "Web", "a/b"] {
            assert!(dns_subdomain(bad).is_some(), "{bad}");
        }
    }
}
