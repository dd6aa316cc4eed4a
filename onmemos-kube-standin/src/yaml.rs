//! YAML request bodies, read as JSON the way the apiserver converts them.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

fn to_json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{r:?} is not a number JSON can hold"))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    other => return Err(format!("a map key must be a scalar, not {other:?}")),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => return Err("aliases are not supported".into()),
        Yaml::BadValue => return Err("a value could not be read".into()),
    })
}

/// The one YAML document of `body`, as JSON.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.len() {
        0 => Err("the body is empty".into()),
        1 => to_json(&docs.remove(0)),
        n => Err(format!("the body holds {n} YAML documents; send one")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_yaml_reads_as_its_json() {
        let v = parse(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: '1'}\ndata:\n  k: v\n  n: \"2\"\nlist: [1, 2.5, true, null]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(v["metadata"]["labels"]["x"], "1");
        assert_eq!(v["list"], serde_json::json!([1, 2.5, true, null]));
        assert!(parse(b"a: [1, 2\n").is_err());
        assert!(parse(b"a: 1\n---\nb: 2\n").is_err());
    }
}
