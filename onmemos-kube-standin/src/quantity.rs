//! Resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`) as the apiserver reads them.

/// `q` in thousandths (CPU millis when `q` counts cores; milli-bytes for memory is never
/// needed, so memory is read with [`bytes`]). `None` when it does not parse.
pub fn millis(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<u64>().ok();
    }
    scaled(q).map(|v| (v * 1000.0).round() as u64)
}

/// `q` in bytes (or in units, for counts). `None` when it does not parse.
pub fn bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<u64>().ok().map(|v| v.div_ceil(1000));
    }
    scaled(q).map(|v| v.round() as u64)
}

fn scaled(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                .map(|v| v * factor);
        }
    }
    q.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_the_apiserver_reads_them() {
        assert_eq!(millis("100m"), Some(100));
        assert_eq!(millis("1.5"), Some(1500));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("2e3"), Some(2000));
        assert_eq!(bytes("110"), Some(110));
        assert_eq!(bytes("x"), None);
        assert_eq!(millis("-1"), None);
    }
}
