//! SenML JSON, content format 110 (`application/senml+json`; RFC 8428 §5, LwM2M 1.1
//! Core §7.4.4). The shared rules are in [`crate::senml`].
//!
//! ```json
//! [{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"9","v":95},{"n":"13","v":1367491215}]
//! ```
//!
//! `vd` is base64url (RFC 8428 §5: URL-safe alphabet, no padding); the decoder also takes
//! padding and the standard alphabet, as devices send both.
//!
//! Numbers are parsed by serde_json as the workspace configures it (without the
//! `float_roundtrip` feature): a float of more than 15 significant digits may come back
//! one ULP off. CBOR carries floats exactly.

use serde_json::{Map, Number, Value as Json};

use crate::base64::{self, Alphabet};
use crate::error::SenmlError;
use crate::oma_json::number_value;
use crate::senml::{resolve, Fields};
use crate::value::{ObjLink, TimedRecord, Value};

/// Decodes a SenML JSON pack.
pub fn decode_senml_json(payload: &[u8]) -> Result<Vec<TimedRecord>, SenmlError> {
    let json: Json =
        serde_json::from_slice(payload).map_err(|e| SenmlError::Json(e.to_string()))?;
    let Json::Array(pack) = json else {
        return Err(SenmlError::NotAPack);
    };
    let mut parsed = Vec::with_capacity(pack.len());
    for (index, record) in pack.iter().enumerate() {
        let Json::Object(record) = record else {
            return Err(SenmlError::NotAPack);
        };
        parsed.push(fields(index, record)?);
    }
    resolve(parsed)
}

fn fields(index: usize, record: &Map<String, Json>) -> Result<Fields, SenmlError> {
    let mut fields = Fields::default();
    for (key, value) in record {
        let wrong = |field: &'static str| SenmlError::FieldType {
            record: index,
            field,
        };
        match key.as_str() {
            "bn" => fields.base_name = Some(string(value).ok_or(wrong("bn"))?.to_owned()),
            "n" => fields.name = Some(string(value).ok_or(wrong("n"))?.to_owned()),
            "bt" => fields.base_time = Some(float(index, value).ok_or(wrong("bt"))??),
            "t" => fields.time = Some(float(index, value).ok_or(wrong("t"))??),
            "bver" => fields.base_version = Some(value.as_i64().ok_or(wrong("bver"))?),
            "bv" => fields.base_value = Some(number(index, value).ok_or(wrong("bv"))??),
            "v" => {
                let v = number(index, value).ok_or(wrong("v"))??;
                fields.set_value(index, v, true)?;
            }
            "vs" => {
                let s = string(value).ok_or(wrong("vs"))?;
                fields.set_value(index, Value::String(s.to_owned()), false)?;
            }
            "vb" => {
                let b = value.as_bool().ok_or(wrong("vb"))?;
                fields.set_value(index, Value::Boolean(b), false)?;
            }
            "vd" => {
                let text = string(value).ok_or(wrong("vd"))?;
                let data = base64::decode(text, Alphabet::Url)
                    .or_else(|_| base64::decode(text, Alphabet::Standard))
                    .map_err(|source| SenmlError::Value {
                        record: index,
                        source,
                    })?;
                fields.set_value(index, Value::Opaque(data.into()), false)?;
            }
            "vlo" => {
                let text = string(value).ok_or(wrong("vlo"))?;
                let link = text
                    .parse::<ObjLink>()
                    .map_err(|source| SenmlError::Value {
                        record: index,
                        source,
                    })?;
                fields.set_value(index, Value::ObjLink(link), false)?;
            }
            other if other.ends_with('_') => {
                return Err(SenmlError::MustUnderstand {
                    record: index,
                    field: crate::value::truncate(other),
                })
            }
            _ => {}
        }
    }
    Ok(fields)
}

fn string(value: &Json) -> Option<&str> {
    value.as_str()
}

/// `None` when not a number; `Some(Err)` when not finite.
fn float(index: usize, value: &Json) -> Option<Result<f64, SenmlError>> {
    let f = value.as_f64()?;
    Some(if f.is_finite() {
        Ok(f)
    } else {
        Err(SenmlError::NotFinite(index))
    })
}

fn number(index: usize, value: &Json) -> Option<Result<Value, SenmlError>> {
    let Json::Number(n) = value else {
        return None;
    };
    Some(number_value(n).ok_or(SenmlError::NotFinite(index)))
}

/// Encodes records as a SenML JSON pack: each record carries its full path in `n` and
/// its time, if any, in `t`. Strings and core links go in `vs`, numbers and times in `v`,
/// opaque in `vd` (base64url), object links in `vlo`.
pub fn encode_senml_json(records: &[TimedRecord]) -> Result<String, SenmlError> {
    let mut pack = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let finite = |f: f64| Number::from_f64(f).ok_or(SenmlError::NotFinite(index));
        let mut map = Map::new();
        map.insert("n".into(), Json::String(record.path.to_string()));
        let member = match &record.value {
            Value::String(s) | Value::CoreLink(s) => Some(("vs", Json::String(s.clone()))),
            Value::Integer(n) | Value::Time(n) => Some(("v", Json::from(*n))),
            Value::UnsignedInteger(n) => Some(("v", Json::from(*n))),
            Value::Float(f) => Some(("v", Json::Number(finite(*f)?))),
            Value::Boolean(b) => Some(("vb", Json::Bool(*b))),
            Value::Opaque(bytes) => Some((
                "vd",
                Json::String(base64::encode(bytes, Alphabet::Url, false)),
            )),
            Value::ObjLink(link) => Some(("vlo", Json::String(link.to_string()))),
            Value::None => None,
        };
        if let Some((key, value)) = member {
            map.insert(key.into(), value);
        }
        if let Some(t) = record.time {
            map.insert("t".into(), Json::Number(finite(t)?));
        }
        pack.push(Json::Object(map));
    }
    Ok(Json::Array(pack).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Path;
    use bytes::Bytes;

    fn rec(p: &str, value: Value, time: Option<f64>) -> TimedRecord {
        TimedRecord {
            path: p.parse::<Path>().unwrap(),
            value,
            time,
        }
    }

    #[test]
    fn the_lwm2m_device_example_decodes() {
        let json = br#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
            {"n":"1","vs":"Lightweight M2M Client"},{"n":"6/0","v":1},{"n":"6/1","v":5},
            {"n":"9","v":100},{"n":"13","v":1367491215},{"n":"16","vs":"U"}]"#;
        let records = decode_senml_json(json).unwrap();
        assert_eq!(records.len(), 7);
        assert_eq!(
            records[0],
            rec("/3/0/0", Value::String("Open Mobile Alliance".into()), None)
        );
        assert_eq!(records[3], rec("/3/0/6/1", Value::Integer(5), None));
        assert_eq!(
            records[5],
            rec("/3/0/13", Value::Integer(1_367_491_215), None)
        );
    }

    #[test]
    fn every_value_kind_round_trips() {
        let records = vec![
            rec("/3/0/0", Value::String("x".into()), Some(1.5)),
            rec("/3/0/1", Value::Integer(-7), None),
            rec("/3/0/2", Value::UnsignedInteger(u64::MAX), None),
            rec("/3/0/3", Value::Float(2.0), Some(1_700_000_000.0)),
            rec("/3/0/4", Value::Boolean(true), None),
            rec(
                "/3/0/5",
                Value::Opaque(Bytes::from_static(&[0xFB, 0xFF])),
                None,
            ),
            rec(
                "/3/0/6",
                Value::ObjLink(ObjLink {
                    object: 3,
                    instance: 0,
                }),
                None,
            ),
            rec("/3/0/7", Value::None, None),
        ];
        let json = encode_senml_json(&records).unwrap();
        assert!(json.contains(r#""vd":"-_8""#), "{json}");
        assert!(json.contains(r#""vlo":"3:0""#), "{json}");
        assert_eq!(decode_senml_json(json.as_bytes()).unwrap(), records);
        assert!(encode_senml_json(&[rec("/1", Value::Float(f64::NAN), None)]).is_err());
    }

    #[test]
    fn opaque_data_takes_either_alphabet_and_padding() {
        for vd in ["AQI", "AQI=", "-_8", "+/8="] {
            let json = format!(r#"[{{"n":"/5/0/0","vd":"{vd}"}}]"#);
            assert!(decode_senml_json(json.as_bytes()).is_ok(), "{vd}");
        }
    }

    #[test]
    fn bad_senml_json_is_refused() {
        let cases: [(&[u8], &str); 13] = [
            (b"{}", "not a pack"),
            (b"[1]", "not a pack"),
            (b"[", "json"),
            (br#"[{"v":1}]"#, "missing name"),
            (br#"[{"n":3,"v":1}]"#, "n type"),
            (br#"[{"n":"/3/0/0","v":"1"}]"#, "v type"),
            (br#"[{"n":"/3/0/0","vb":1}]"#, "vb type"),
            (br#"[{"n":"/3/0/0","t":"x"}]"#, "t type"),
            (br#"[{"n":"/3/0/0","v":1,"vs":"x"}]"#, "two values"),
            (br#"[{"n":"/3/0/0","vd":"!"}]"#, "vd"),
            (br#"[{"n":"/3/0/0","vlo":"3"}]"#, "vlo"),
            (br#"[{"n":"/3/0/0","foo_":1}]"#, "must understand"),
            (br#"[{"bver":11,"n":"/3/0/0"}]"#, "version"),
        ];
        for (json, why) in cases {
            assert!(decode_senml_json(json).is_err(), "{why}");
        }
        assert_eq!(
            decode_senml_json(br#"[{"v":1}]"#),
            Err(SenmlError::MissingName(0))
        );
        // Unknown fields without the underscore, units and sums are ignored.
        assert_eq!(
            decode_senml_json(br#"[{"n":"/3/0/0","u":"Cel","s":1,"x":1,"v":2}]"#).unwrap(),
            vec![rec("/3/0/0", Value::Integer(2), None)]
        );
    }
}
