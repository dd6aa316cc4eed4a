//! Object paths: what a user may name inside a workspace, and where it lives in the store.

use crate::error::{Error, Result};
use crate::id::WorkspaceId;

/// The longest object path, in bytes (S3's and GCS's limit).
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest segment of an object path, in bytes (a file name on most file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Items per page of a listing when the caller does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// The most items a page of a listing can hold.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// How long a presigned URL works when the caller does not say.
pub const DEFAULT_PRESIGN_SECS: u64 = 900;

/// The prefix of the object store holding `workspace`'s objects.
pub fn workspace_prefix(workspace: WorkspaceId) -> String {
    format!("workspaces/{workspace}/")
}

/// The key in the object store of the object at `path` in `workspace`.
pub(super) fn object_key(workspace: WorkspaceId, path: &str) -> String {
    format!("{}{path}", workspace_prefix(workspace))
}

/// Checks a path a user sent for an object inside a workspace: relative, `/`-separated, no
/// empty, `.` or `..` segment, no control character (NUL included) or backslash, no
/// percent-encoding left after the URL was decoded, at most `MAX_PATH_BYTES` (1,024) bytes with
/// segments of at most `MAX_SEGMENT_BYTES` (255), and no name ending in `#` and digits (the local
/// store's temporary files).
pub fn validate_object_path(path: &str) -> Result<()> {
    check_path(path, "path", "object path")
}

/// The checks of [`validate_object_path`], reported against `field` as a `noun`.
fn check_path(path: &str, field: &'static str, noun: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            field,
            format!("invalid {noun} {path:?}: {why}"),
        ))
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad(&format!("it is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return bad("it must be relative to the workspace (no leading `/`)");
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return bad(&format!("it contains the control character {c:?}"));
    }
    if path.contains('\\') {
        return bad("it contains a backslash");
    }
    if has_percent_encoding(path) {
        return bad("it still contains percent-encoding after decoding (`%XX`)");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return bad("it has a `.` or `..` segment"),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return bad(&format!(
                    "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
                ));
            }
            _ => {}
        }
    }
    if let Some((_, suffix)) = path.rsplit('/').next().unwrap_or(path).rsplit_once('#')
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return bad("names ending in `#` and digits are reserved");
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a path whose last segment may be partial or empty.
pub(super) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    // A prefix ending in `/` is a directory; otherwise its last segment is partial.
    let whole = prefix.strip_suffix('/').unwrap_or(prefix);
    if whole.is_empty() {
        return Err(Error::invalid("prefix", "a prefix must not start with `/`"));
    }
    check_path(whole, "prefix", "prefix")
}

fn has_percent_encoding(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the input, the check never panics, and what it accepts cannot leave the
        /// workspace or confuse a store: relative, no empty, `.` or `..` segment, no control
        /// character or backslash, within the byte bounds.
        #[test]
        fn accepted_paths_stay_beneath_their_workspace(path in "\\PC{0,40}|[a./\\\\%#0-9]{0,12}|.{0,1100}") {
            if validate_object_path(&path).is_ok() {
                proptest::prop_assert!(!path.is_empty() && path.len() <= MAX_PATH_BYTES);
                proptest::prop_assert!(!path.starts_with('/'));
                proptest::prop_assert!(!path.chars().any(|c| c.is_control() || c == '\\'));
                for segment in path.split('/') {
                    proptest::prop_assert!(!matches!(segment, "" | "." | ".."), "{path:?}");
                    proptest::prop_assert!(segment.len() <= MAX_SEGMENT_BYTES);
                }
            }
        }

        /// Paths made of ordinary segments are accepted.
        #[test]
        fn ordinary_paths_are_accepted(segments in proptest::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9_. -]{0,20}", 1..6)) {
            let path = segments.join("/");
            proptest::prop_assert!(validate_object_path(&path).is_ok(), "{path:?}");
        }
    }

    #[test]
    fn object_paths_that_could_escape_or_confuse_are_refused() {
        for ok in [
            "a",
            "data/train.csv",
            "ünï cödé/файл с пробелом.txt",
            "50% off.txt",
            "a#b",
            "x#",
        ] {
            assert!(
                validate_object_path(ok).is_ok(),
                "{ok:?} should be accepted"
            );
        }
        let long_segment = "a".repeat(256);
        let long_path = ["b"; 600].join("/");
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "leading"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/./b", "`..`"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a\0b", "control"),
            ("a\nb", "control"),
            ("..\\x", "backslash"),
            ("%2e%2e/x", "percent"),
            ("a%2Fb", "percent"),
            ("file#12", "reserved"),
            (long_segment.as_str(), "segment is longer"),
            (long_path.as_str(), "longer than 1024"),
        ] {
            let e = validate_object_path(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert_eq!(e.field(), Some("path"));
            assert!(e.message().contains(why), "{bad:?}: {}", e.message());
        }
    }

    #[test]
    fn prefixes_may_end_in_a_partial_segment_or_a_slash() {
        for ok in ["", "data/", "data/tr", "rep"] {
            assert!(validate_prefix(ok).is_ok(), "{ok:?}");
        }
        for bad in ["/", "../", "a//", "/abs", "a/../b/"] {
            let e = validate_prefix(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert_eq!(e.field(), Some("prefix"));
        }
    }
}
