//! Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send
//! as protobuf to the endpoints the stand-in serves: the `k8s\0` envelope (`runtime.Unknown`)
//! and the `Eviction` of `kubectl drain`.

use serde_json::{Value, json};

/// The envelope's magic prefix.
const MAGIC: &[u8] = b"k8s\0";

/// One field of a message.
#[derive(Debug, Clone)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, in order; `None` when it is malformed.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(buf, &mut at)?),
            1 => {
                at = at.checked_add(8).filter(|a| *a <= buf.len())?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|e| *e <= buf.len())?;
                let bytes = &buf[at..end];
                at = end;
                Field::Bytes(bytes)
            }
            5 => {
                at = at.checked_add(4).filter(|a| *a <= buf.len())?;
                Field::Other
            }
            _ => return None,
        };
        out.push((number, field));
    }
    Some(out)
}

fn string(f: &Field<'_>) -> Option<String> {
    match f {
        Field::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
}

/// The kind and the raw object of a protobuf body.
fn unwrap(body: &[u8]) -> Result<(String, &[u8]), String> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body lacks the k8s envelope")?;
    let outer = fields(inner).ok_or("the protobuf envelope is malformed")?;
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in &outer {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (m, g) in fields(type_meta).ok_or("malformed TypeMeta")? {
                    if m == 2 {
                        kind = string(&g).unwrap_or_default();
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    Ok((kind, raw))
}

/// An `Eviction` sent as protobuf, as JSON.
pub fn eviction(body: &[u8]) -> Result<Value, String> {
    let (kind, raw) = unwrap(body)?;
    if kind != "Eviction" {
        return Err(format!("expected an Eviction, got {kind:?}"));
    }
    let mut out = json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {} });
    for (n, f) in fields(raw).ok_or("the Eviction is malformed")? {
        match (n, &f) {
            (1, Field::Bytes(meta)) => {
                for (m, g) in fields(meta).ok_or("malformed ObjectMeta")? {
                    match m {
                        1 => out["metadata"]["name"] = json!(string(&g)),
                        3 => out["metadata"]["namespace"] = json!(string(&g)),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(options)) => {
                let mut o = json!({});
                for (m, g) in fields(options).ok_or("malformed DeleteOptions")? {
                    match (m, &g) {
                        (1, Field::Varint(v)) => o["gracePeriodSeconds"] = json!(*v as i64),
                        (2, Field::Bytes(pre)) => {
                            for (k, h) in fields(pre).ok_or("malformed Preconditions")? {
                                match k {
                                    1 => o["preconditions"]["uid"] = json!(string(&h)),
                                    2 => o["preconditions"]["resourceVersion"] = json!(string(&h)),
                                    _ => {}
                                }
                            }
                        }
                        (4, _) => o["propagationPolicy"] = json!(string(&g)),
                        (5, _) => {
                            let mut dry = o["dryRun"].as_array().cloned().unwrap_or_default();
                            dry.push(json!(string(&g)));
                            o["dryRun"] = Value::Array(dry);
                        }
                        _ => {}
                    }
                }
                out["deleteOptions"] = o;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, bytes) in fields {
            out.push(((n << 3) | 2) as u8);
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        out
    }

    #[test]
    fn an_eviction_in_its_envelope_reads_back() {
        let meta = message(&[(1, b"web-0"), (3, b"prod")]);
        let mut options = vec![(1 << 3), 30];
        options.extend(message(&[(5, b"All")]));
        let eviction_raw = message(&[(1, &meta), (2, &options)]);
        let type_meta = message(&[(1, b"policy/v1"), (2, b"Eviction")]);
        let mut body = MAGIC.to_vec();
        body.extend(message(&[(1, &type_meta), (2, &eviction_raw)]));
        let e = eviction(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e["metadata"]["name"], "web-0");
        assert_eq!(e["metadata"]["namespace"], "prod");
        assert_eq!(e["deleteOptions"]["gracePeriodSeconds"], 30);
        assert_eq!(e["deleteOptions"]["dryRun"], json!(["All"]));
        assert!(eviction(b"not protobuf").is_err());
        assert!(eviction(&[b'k', b'8', b's', 0, 0x0a, 0xff]).is_err());
    }
}
