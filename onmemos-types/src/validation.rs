//! Input rules shared by every request type, and the conversion of `validator` errors into an
//! [`Error`] that names the field.

use std::borrow::Cow;
use std::collections::BTreeMap;

use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::error::{Error, Result};

/// Most environment variables a workspace, template or request may set.
pub const MAX_ENV_VARS: usize = 64;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 4096;
/// Most tags on a template.
pub const MAX_TAGS: usize = 16;

/// Validates `value` with its `validator` rules, naming the first bad field (in path order).
pub fn validate<T: Validate>(value: &T) -> Result<()> {
    value.validate().map_err(|errors| {
        let mut found = Vec::new();
        flatten("", &errors, &mut found);
        found.sort_by(|a, b| a.0.cmp(&b.0));
        match found.into_iter().next() {
            Some((field, message)) => Error::invalid(field, message),
            None => Error::invalid("", "invalid request"),
        }
    })
}

fn flatten(prefix: &str, errors: &ValidationErrors, out: &mut Vec<(String, String)>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    out.push((path.clone(), describe(&path, e)));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

fn describe(field: &str, e: &ValidationError) -> String {
    if let Some(message) = &e.message {
        return format!("{field}: {message}");
    }
    let param = |name: &str| e.params.get(name).map(|v| v.to_string());
    match e.code.as_ref() {
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("{field} must be between {min} and {max}"),
            (Some(min), None) => format!("{field} must be at least {min}"),
            (None, Some(max)) => format!("{field} must be at most {max}"),
            _ => format!("{field} is out of range"),
        },
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => {
                format!("{field} must have between {min} and {max} characters")
            }
            (None, Some(max)) => format!("{field} must have at most {max} characters"),
            (Some(min), None) => format!("{field} must have at least {min} characters"),
            _ => format!("{field} has the wrong length"),
        },
        "email" => format!("{field} must be an email address"),
        code => format!("{field} is invalid ({code})"),
    }
}

fn rule(message: &'static str) -> ValidationError {
    ValidationError::new("rule").with_message(Cow::Borrowed(message))
}

/// A DNS label: 1–63 lowercase letters, digits and `-`, starting and ending alphanumeric.
/// Workspace and template names follow it, since they become Kubernetes namespaces and labels.
pub fn dns_label(name: &str) -> Result<(), ValidationError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(rule(
            "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

/// Environment variables: at most [`MAX_ENV_VARS`], names `[A-Za-z_][A-Za-z0-9_]*` of at most
/// 128 bytes, values of at most [`MAX_ENV_VALUE_BYTES`] bytes without NUL.
pub fn env_vars(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if env.len() > MAX_ENV_VARS {
        return Err(rule("at most 64 environment variables"));
    }
    for (name, value) in env {
        let b = name.as_bytes();
        let name_ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if !name_ok {
            return Err(rule(
                "variable names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)",
            ));
        }
        if value.len() > MAX_ENV_VALUE_BYTES || value.contains('\0') {
            return Err(rule(
                "variable values must be at most 4096 bytes and contain no NUL",
            ));
        }
    }
    Ok(())
}

/// Tags: at most [`MAX_TAGS`], each 1–32 lowercase letters, digits or `-`.
pub fn tags(tags: &[String]) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        return Err(rule("at most 16 tags"));
    }
    let ok = tags.iter().all(|t| {
        !t.is_empty()
            && t.len() <= 32
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(rule("tags are 1-32 lowercase letters, digits or '-'"))
    }
}

/// Single-line text without control characters.
pub fn single_line(text: &str) -> Result<(), ValidationError> {
    if text.chars().any(char::is_control) {
        Err(rule("must not contain control characters"))
    } else {
        Ok(())
    }
}

/// A container image reference: no whitespace or control characters.
pub fn image_ref(image: &str) -> Result<(), ValidationError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(rule("must be a non-empty image reference without spaces"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "my-ws", "x1", &"a".repeat(63)] {
            assert!(dns_label(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "é",
            &"a".repeat(64),
            "a b",
        ] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_rules() {
        let mut env = BTreeMap::new();
        env.insert("PATH_2".to_string(), "x".to_string());
        assert!(env_vars(&env).is_ok());
        env.insert("2BAD".to_string(), "x".to_string());
        assert!(env_vars(&env).is_err());
        let mut env = BTreeMap::new();
        env.insert("A".to_string(), "nul\0".to_string());
        assert!(env_vars(&env).is_err());
        let many: BTreeMap<_, _> = (0..65).map(|i| (format!("V{i}"), String::new())).collect();
        assert!(env_vars(&many).is_err());
    }

    #[test]
    fn tag_rules() {
        assert!(tags(&["gpu".into(), "py-3".into()]).is_ok());
        assert!(tags(&["Bad".into()]).is_err());
        assert!(tags(&vec!["a".to_string(); 17]).is_err());
    }
}
