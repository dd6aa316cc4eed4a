//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`=`, `==`, `!=` on `metadata.name`, `metadata.namespace`, `spec.nodeName`,
//! `status.phase`), parsed as the apiserver parses them.

use std::collections::BTreeMap;

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The fields a field selector may name.
const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "spec.unschedulable",
    "involvedObject.name",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
];

fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(|p| crate::names::dns_subdomain(p).is_none())
}

fn valid_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Splits at top-level commas (not inside `( … )`).
fn terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unexpected ')' in {s:?}"));
                }
            }
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unclosed '(' in {s:?}"));
    }
    out.push(s[start..].trim());
    Ok(out)
}

impl LabelSelector {
    /// Parses `s`; the error says what could not be parsed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for term in terms(s)? {
            if term.is_empty() {
                return Err(format!("found '', expected: identifier in {s:?}"));
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some(open) = term.find('(') {
                let head = term[..open].trim();
                let Some(list) = term[open + 1..].strip_suffix(')') else {
                    return Err(format!("found {term:?}, expected: ')'"));
                };
                let values: Vec<String> = list.split(',').map(|v| v.trim().to_owned()).collect();
                let mut words = head.split_whitespace();
                let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
                    return Err(format!("unable to parse requirement: {term:?}"));
                };
                for v in &values {
                    if !valid_value(v) {
                        return Err(format!("invalid label value: {v:?}"));
                    }
                }
                match op {
                    "in" => Requirement::In(key.to_owned(), values),
                    "notin" => Requirement::NotIn(key.to_owned(), values),
                    _ => {
                        return Err(format!(
                            "unable to parse requirement: unknown operator {op:?}"
                        ));
                    }
                }
            } else if term.split_whitespace().count() == 1 {
                Requirement::Exists(term.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {term:?}"));
            };
            let (key, value) = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::DoesNotExist(k) => (k, None),
            };
            if !valid_key(key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key {key:?}"
                ));
            }
            if let Some(v) = value
                && !valid_value(v)
            {
                return Err(format!(
                    "unable to parse requirement: invalid label value {v:?}"
                ));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// The labels of an object.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl FieldSelector {
    /// Parses `s`; the error names the field or term that is not supported.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(out));
        }
        for term in terms(s)? {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !FIELDS.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(out))
    }

    /// Whether `object` satisfies every term (a missing field reads as `""`).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn every_operator_selects_what_the_apiserver_would() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let sel = |s: &str| LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web,tier!=back").matches(&l));
        assert!(sel("app in (web, api),tier").matches(&l));
        assert!(!sel("app notin (web)").matches(&l));
        assert!(sel("!missing").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("").matches(&l));
        assert!(sel("missing notin (x)").matches(&l));
    }

    #[test]
    fn selectors_that_do_not_parse_are_refused() {
        for bad in [
            "app in (web",
            "app=we b",
            "=x",
            "a,,b",
            "app foo (x)",
            "-bad=1",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(FieldSelector::parse("spec.unknown=x").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn field_selectors_read_the_object() {
        let pod = serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(f("spec.nodeName=n1,status.phase!=Pending").matches(&pod));
        assert!(!f("metadata.name=b").matches(&pod));
        assert!(f("spec.nodeName!=").matches(&pod));
    }
}
