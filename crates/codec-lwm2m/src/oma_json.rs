//! OMA JSON, content format 11543 (`application/vnd.oma.lwm2m+json`, LwM2M 1.0 §6.4.4):
//!
//! ```json
//! {"bn":"/3/0/","bt":25462634,"e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"9","v":100,"t":-5}]}
//! ```
//!
//! A name is the base name `bn` joined to the element's `n` with one `/` (as EMQX joins
//! them, so `"bn":"/3/0"` with `"n":"0"` is `/3/0/0` too). Values: `v` (number: integer,
//! unsigned, float or time), `sv` (string; also opaque, in base64), `bv` (boolean), `ov`
//! (object link `"3:0"`), or none. `t` is the measurement time relative to `bt` — a time
//! stamp, not a value (EMQX's translator reads `t` as the value; this follows the spec).
//!
//! Without the object definition the decoder types numbers by their JSON spelling
//! (integer, or float when it has a fraction or exponent) and `sv` as a string; the
//! caller can re-type with [`crate::retype`].

use serde_json::{Map, Number, Value as Json};

use crate::base64::{self, Alphabet};
use crate::error::{OmaJsonError, ValueError};
use crate::path::Path;
use crate::value::{ObjLink, TimedRecord, Value};

/// Decodes an OMA JSON payload.
pub fn decode_oma_json(payload: &[u8]) -> Result<Vec<TimedRecord>, OmaJsonError> {
    let json: Json =
        serde_json::from_slice(payload).map_err(|e| OmaJsonError::Syntax(e.to_string()))?;
    let Json::Object(top) = json else {
        return Err(OmaJsonError::Shape("payload is not a JSON object"));
    };
    let base_name = match top.get("bn") {
        None => "",
        Some(Json::String(bn)) => bn.as_str(),
        Some(_) => return Err(OmaJsonError::Shape("bn is not a string")),
    };
    let base_time = match top.get("bt") {
        None => None,
        Some(Json::Number(n)) => Some(finite(n)?),
        Some(_) => return Err(OmaJsonError::Shape("bt is not a number")),
    };
    let Some(Json::Array(elements)) = top.get("e") else {
        return Err(OmaJsonError::Shape("e is missing or not an array"));
    };
    let mut records = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        let Json::Object(element) = element else {
            return Err(OmaJsonError::Shape("an element of e is not an object"));
        };
        let name = match element.get("n") {
            None => "",
            Some(Json::String(n)) => n.as_str(),
            Some(_) => return Err(OmaJsonError::Shape("n is not a string")),
        };
        let full = join(base_name, name);
        let path = Path::parse(&full).map_err(|source| OmaJsonError::Name {
            name: full.clone(),
            source,
        })?;
        let time = match element.get("t") {
            None => base_time,
            Some(Json::Number(t)) => Some(base_time.unwrap_or(0.0) + finite(t)?),
            Some(_) => return Err(OmaJsonError::Shape("t is not a number")),
        };
        if time.is_some_and(|t| !t.is_finite()) {
            return Err(OmaJsonError::Shape("bt + t overflows"));
        }
        let value = element_value(element, index)?;
        records.push(TimedRecord { path, value, time });
    }
    Ok(records)
}

/// Joins a base name and a name with exactly one `/` between them.
fn join(base: &str, name: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        name.trim_start_matches('/')
    )
}

fn finite(n: &Number) -> Result<f64, OmaJsonError> {
    n.as_f64()
        .filter(|f| f.is_finite())
        .ok_or(OmaJsonError::Shape("number is not finite"))
}

fn element_value(element: &Map<String, Json>, index: usize) -> Result<Value, OmaJsonError> {
    let present: Vec<&str> = ["v", "sv", "bv", "ov"]
        .into_iter()
        .filter(|key| element.contains_key(*key))
        .collect();
    let key = match present.as_slice() {
        [] => return Ok(Value::None),
        [key] => *key,
        _ => return Err(OmaJsonError::SeveralValues(index)),
    };
    let wrong = OmaJsonError::Shape(match key {
        "v" => "v is not a number",
        "sv" => "sv is not a string",
        "bv" => "bv is not a boolean",
        _ => "ov is not a string",
    });
    Ok(match (key, &element[key]) {
        ("v", Json::Number(n)) => number_value(n).ok_or(wrong)?,
        ("sv", Json::String(s)) => Value::String(s.clone()),
        ("bv", Json::Bool(b)) => Value::Boolean(*b),
        ("ov", Json::String(s)) => Value::ObjLink(s.parse::<ObjLink>()?),
        _ => return Err(wrong),
    })
}

/// An integer JSON number as `Integer` (or `UnsignedInteger` above `i64::MAX`), any
/// other as `Float`.
pub(crate) fn number_value(n: &Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        Some(Value::Integer(i))
    } else if let Some(u) = n.as_u64() {
        Some(Value::UnsignedInteger(u))
    } else {
        n.as_f64().filter(|f| f.is_finite()).map(Value::Float)
    }
}

/// Encodes records under `base` as OMA JSON: `bn` is `base` with a trailing `/`, each
/// `n` the ids below it (absent for `base` itself), and `t` the record's time.
pub fn encode_oma_json(records: &[TimedRecord], base: &Path) -> Result<String, OmaJsonError> {
    let mut elements = Vec::with_capacity(records.len());
    for record in records {
        let Some(relative) = record.path.relative_to(base) else {
            return Err(OmaJsonError::NotUnderBase {
                path: record.path,
                base: *base,
            });
        };
        let mut element = Map::new();
        if !relative.is_empty() {
            let name: Vec<String> = relative.iter().map(u16::to_string).collect();
            element.insert("n".into(), Json::String(name.join("/")));
        }
        let member = match &record.value {
            Value::String(s) | Value::CoreLink(s) => Some(("sv", Json::String(s.clone()))),
            Value::Opaque(bytes) => Some((
                "sv",
                Json::String(base64::encode(bytes, Alphabet::Standard, true)),
            )),
            Value::Integer(n) | Value::Time(n) => Some(("v", Json::from(*n))),
            Value::UnsignedInteger(n) => Some(("v", Json::from(*n))),
            Value::Float(f) => Some(("v", Json::Number(finite_number(*f)?))),
            Value::Boolean(b) => Some(("bv", Json::Bool(*b))),
            Value::ObjLink(link) => Some(("ov", Json::String(link.to_string()))),
            Value::None => None,
        };
        if let Some((key, value)) = member {
            element.insert(key.into(), value);
        }
        if let Some(t) = record.time {
            element.insert("t".into(), Json::Number(finite_number(t)?));
        }
        elements.push(Json::Object(element));
    }
    let mut top = Map::new();
    top.insert("bn".into(), Json::String(format!("{base}/")));
    top.insert("e".into(), Json::Array(elements));
    Ok(Json::Object(top).to_string())
}

fn finite_number(f: f64) -> Result<Number, ValueError> {
    Number::from_f64(f).ok_or(ValueError::WrongType {
        expected: "finite number",
        found: "NaN or infinity",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn path(text: &str) -> Path {
        text.parse().unwrap()
    }

    fn rec(p: &str, value: Value) -> TimedRecord {
        TimedRecord {
            path: path(p),
            value,
            time: None,
        }
    }

    #[test]
    fn the_brief_example_decodes() {
        let json = br#"{"bn":"/3/0/","e":[{"n":"0","sv":"x"},{"n":"1","v":1},{"n":"2","bv":true},{"n":"3","ov":"1:0"}]}"#;
        assert_eq!(
            decode_oma_json(json).unwrap(),
            vec![
                rec("/3/0/0", Value::String("x".into())),
                rec("/3/0/1", Value::Integer(1)),
                rec("/3/0/2", Value::Boolean(true)),
                rec(
                    "/3/0/3",
                    Value::ObjLink(ObjLink {
                        object: 1,
                        instance: 0
                    })
                ),
            ]
        );
    }

    #[test]
    fn names_join_with_one_slash_and_times_add_to_the_base_time() {
        let json =
            br#"{"bn":"/3/0","bt":1000,"e":[{"n":"/6/0","v":1,"t":-5},{"n":"9","v":1.5},{"v":2}]}"#;
        let decoded = decode_oma_json(json).unwrap();
        assert_eq!(decoded[0].path, path("/3/0/6/0"));
        assert_eq!(decoded[0].time, Some(995.0));
        assert_eq!(decoded[1].value, Value::Float(1.5));
        assert_eq!(decoded[1].time, Some(1000.0));
        assert_eq!(decoded[2].path, path("/3/0"));
    }

    #[test]
    fn records_round_trip_through_oma_json() {
        let records = vec![
            rec("/3/0/0", Value::String("Open Mobile Alliance".into())),
            rec("/3/0/6/0", Value::Integer(1)),
            rec("/3/0/6/1", Value::Integer(5)),
            rec("/3/0/7/0", Value::Float(3.5)),
            rec("/3/0/8", Value::Boolean(false)),
            rec(
                "/3/0/9",
                Value::ObjLink(ObjLink {
                    object: 3,
                    instance: 1,
                }),
            ),
            TimedRecord {
                path: path("/3/0/10"),
                value: Value::UnsignedInteger(u64::MAX),
                time: Some(12.5),
            },
            rec("/3/0/4", Value::None),
        ];
        let json = encode_oma_json(&records, &path("/3/0")).unwrap();
        assert!(
            json.starts_with(r#"{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"}"#),
            "{json}"
        );
        assert_eq!(decode_oma_json(json.as_bytes()).unwrap(), records);
        // Opaque and time go out as sv (base64) and v: the type is the object's to say.
        let lossy = vec![
            rec("/3/0/13", Value::Time(1_367_491_215)),
            rec("/5/0/0", Value::Opaque(Bytes::from_static(&[1, 2, 3]))),
        ];
        let json = encode_oma_json(&lossy, &path("/3")).unwrap_err();
        assert!(matches!(json, OmaJsonError::NotUnderBase { .. }));
        let json = encode_oma_json(&lossy[..1], &path("/3/0/13")).unwrap();
        assert_eq!(json, r#"{"bn":"/3/0/13/","e":[{"v":1367491215}]}"#);
    }

    #[test]
    fn malformed_oma_json_is_refused() {
        for bad in [
            &br#"[]"#[..],
            br#"{"bn":"/3/0/"}"#,
            br#"{"e":{}}"#,
            br#"{"bn":3,"e":[]}"#,
            br#"{"e":[{"n":"/3/0/0","v":"1"}]}"#,
            br#"{"e":[{"n":"/3/0/0","bv":1}]}"#,
            br#"{"e":[{"n":"/3/0/0","ov":"3"}]}"#,
            br#"{"e":[{"n":"/3/0/0","v":1,"sv":"x"}]}"#,
            br#"{"e":[{"v":1}]}"#,
            br#"{"e":[{"n":"/3/x","v":1}]}"#,
            br#"{"e":[{"n":"/3/0/0","v":1,"t":"now"}]}"#,
            br#"{"e":[1]}"#,
            b"{",
        ] {
            assert!(
                decode_oma_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let err = decode_oma_json(br#"{"e":[{"v":1}]}"#).unwrap_err();
        assert!(err.to_string().contains("§6.4.4"), "{err}");
    }
}
