//! SenML CBOR, content format 112 (`application/senml+cbor`; RFC 8428 §6, LwM2M 1.1
//! Core §7.4.5). The shared rules are in [`crate::senml`].
//!
//! Labels (RFC 8428 Table 4): `bver` −1, `bn` −2, `bt` −3, `bu` −4, `bv` −5, `bs` −6,
//! `n` 0, `u` 1, `v` 2, `vs` 3, `vb` 4, `s` 5, `t` 6, `ut` 7, `vd` 8; LwM2M's object link
//! value has the text label `"vlo"`. `vd` is a byte string.

use bytes::Bytes;

use crate::cbor::{decode_cbor, encode_cbor, Cbor};
use crate::error::SenmlError;
use crate::senml::{resolve, Fields};
use crate::value::{ObjLink, TimedRecord, Value};

/// How deep a SenML CBOR pack may nest: the pack, its records, and one more level so
/// that an array or map in a field is a type error rather than a depth error.
pub const MAX_CBOR_DEPTH: usize = 3;

const BVER: i128 = -1;
const BN: i128 = -2;
const BT: i128 = -3;
const BV: i128 = -5;
const N: i128 = 0;
const V: i128 = 2;
const VS: i128 = 3;
const VB: i128 = 4;
const T: i128 = 6;
const VD: i128 = 8;
const VLO: &str = "vlo";

/// Decodes a SenML CBOR pack.
pub fn decode_senml_cbor(payload: &[u8]) -> Result<Vec<TimedRecord>, SenmlError> {
    let Cbor::Array(pack) = decode_cbor(payload, MAX_CBOR_DEPTH)? else {
        return Err(SenmlError::NotAPack);
    };
    let mut parsed = Vec::with_capacity(pack.len());
    for (index, record) in pack.iter().enumerate() {
        let Cbor::Map(pairs) = record else {
            return Err(SenmlError::NotAPack);
        };
        parsed.push(fields(index, pairs)?);
    }
    resolve(parsed)
}

fn fields(index: usize, pairs: &[(Cbor, Cbor)]) -> Result<Fields, SenmlError> {
    let mut fields = Fields::default();
    for (label, value) in pairs {
        let wrong = |field: &'static str| SenmlError::FieldType {
            record: index,
            field,
        };
        match (label, label.as_integer()) {
            (_, Some(BN)) => fields.base_name = Some(text(value).ok_or(wrong("bn"))?),
            (_, Some(N)) => fields.name = Some(text(value).ok_or(wrong("n"))?),
            (_, Some(BT)) => fields.base_time = Some(float(index, value).ok_or(wrong("bt"))??),
            (_, Some(T)) => fields.time = Some(float(index, value).ok_or(wrong("t"))??),
            (_, Some(BVER)) => {
                let version = value
                    .as_integer()
                    .and_then(|v| i64::try_from(v).ok())
                    .ok_or(wrong("bver"))?;
                fields.base_version = Some(version);
            }
            (_, Some(BV)) => fields.base_value = Some(number(index, value).ok_or(wrong("bv"))??),
            (_, Some(V)) => {
                let v = number(index, value).ok_or(wrong("v"))??;
                fields.set_value(index, v, true)?;
            }
            (_, Some(VS)) => {
                let s = text(value).ok_or(wrong("vs"))?;
                fields.set_value(index, Value::String(s), false)?;
            }
            (_, Some(VB)) => {
                let Cbor::Bool(b) = value else {
                    return Err(wrong("vb"));
                };
                fields.set_value(index, Value::Boolean(*b), false)?;
            }
            (_, Some(VD)) => {
                let Cbor::Bytes(data) = value else {
                    return Err(wrong("vd"));
                };
                fields.set_value(index, Value::Opaque(Bytes::from(data.clone())), false)?;
            }
            (Cbor::Text(label), _) if label == VLO => {
                let text = text(value).ok_or(wrong("vlo"))?;
                let link = text
                    .parse::<ObjLink>()
                    .map_err(|source| SenmlError::Value {
                        record: index,
                        source,
                    })?;
                fields.set_value(index, Value::ObjLink(link), false)?;
            }
            (Cbor::Text(label), _) if label.ends_with('_') => {
                return Err(SenmlError::MustUnderstand {
                    record: index,
                    field: crate::value::truncate(label),
                })
            }
            _ => {}
        }
    }
    Ok(fields)
}

fn text(value: &Cbor) -> Option<String> {
    match value {
        Cbor::Text(s) => Some(s.clone()),
        _ => None,
    }
}

/// `None` when not a number; `Some(Err)` when not finite.
fn float(index: usize, value: &Cbor) -> Option<Result<f64, SenmlError>> {
    let f = match *value {
        Cbor::Float(f) => f,
        Cbor::Unsigned(n) => n as f64,
        Cbor::Negative(n) => -1.0 - n as f64,
        _ => return None,
    };
    Some(if f.is_finite() {
        Ok(f)
    } else {
        Err(SenmlError::NotFinite(index))
    })
}

/// Integers as `Integer` (`UnsignedInteger` above `i64::MAX`), floats as `Float`.
fn number(index: usize, value: &Cbor) -> Option<Result<Value, SenmlError>> {
    Some(match *value {
        Cbor::Unsigned(n) => Ok(i64::try_from(n)
            .map(Value::Integer)
            .unwrap_or(Value::UnsignedInteger(n))),
        Cbor::Negative(n) => i64::try_from(n)
            .map(|n| Value::Integer(-1 - n))
            .map_err(|_| SenmlError::NotFinite(index)),
        Cbor::Float(f) if f.is_finite() => Ok(Value::Float(f)),
        Cbor::Float(_) => Err(SenmlError::NotFinite(index)),
        _ => return None,
    })
}

/// Encodes records as a SenML CBOR pack: each record carries its full path under label
/// 0 and its time, if any, under label 6 (an integer when exact).
pub fn encode_senml_cbor(records: &[TimedRecord]) -> Result<Vec<u8>, SenmlError> {
    let mut pack = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let mut map = vec![(Cbor::integer(0), Cbor::Text(record.path.to_string()))];
        let member = match &record.value {
            Value::String(s) | Value::CoreLink(s) => {
                Some((Cbor::integer(3), Cbor::Text(s.clone())))
            }
            Value::Integer(n) | Value::Time(n) => Some((Cbor::integer(2), Cbor::integer(*n))),
            Value::UnsignedInteger(n) => Some((Cbor::integer(2), Cbor::Unsigned(*n))),
            Value::Float(f) if f.is_finite() => Some((Cbor::integer(2), Cbor::Float(*f))),
            Value::Float(_) => return Err(SenmlError::NotFinite(index)),
            Value::Boolean(b) => Some((Cbor::integer(4), Cbor::Bool(*b))),
            Value::Opaque(bytes) => Some((Cbor::integer(8), Cbor::Bytes(bytes.to_vec()))),
            Value::ObjLink(link) => Some((Cbor::Text(VLO.into()), Cbor::Text(link.to_string()))),
            Value::None => None,
        };
        map.extend(member);
        if let Some(t) = record.time {
            if !t.is_finite() {
                return Err(SenmlError::NotFinite(index));
            }
            let exact = t.fract() == 0.0 && t.abs() <= 9_007_199_254_740_992.0;
            let t = if exact {
                Cbor::integer(t as i64)
            } else {
                Cbor::Float(t)
            };
            map.push((Cbor::integer(6), t));
        }
        pack.push(Cbor::Map(map));
    }
    let mut out = Vec::new();
    encode_cbor(&Cbor::Array(pack), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CborError;
    use crate::path::Path;

    fn rec(p: &str, value: Value, time: Option<f64>) -> TimedRecord {
        TimedRecord {
            path: p.parse::<Path>().unwrap(),
            value,
            time,
        }
    }

    #[test]
    fn labels_and_base_fields_decode() {
        // [{-2: "/3/0/", -3: 1000, 0: "0", 3: "x"}, {0: "9", 2: 100, 6: -5},
        //  {0: "7", 2: 1.5 (half)}, {"vlo": "3:1", 0: "8"}, {0: "5", 8: h'0102'}]
        let wire = [
            0x85, //
            0xA4, 0x21, 0x65, b'/', b'3', b'/', b'0', b'/', 0x22, 0x19, 0x03, 0xE8, 0x00, 0x61,
            b'0', 0x03, 0x61, b'x', //
            0xA3, 0x00, 0x61, b'9', 0x02, 0x18, 0x64, 0x06, 0x24, //
            0xA2, 0x00, 0x61, b'7', 0x02, 0xF9, 0x3E, 0x00, //
            0xA2, 0x63, b'v', b'l', b'o', 0x63, b'3', b':', b'1', 0x00, 0x61, b'8', //
            0xA2, 0x00, 0x61, b'5', 0x08, 0x42, 0x01, 0x02,
        ];
        assert_eq!(
            decode_senml_cbor(&wire).unwrap(),
            vec![
                rec("/3/0/0", Value::String("x".into()), Some(1000.0)),
                rec("/3/0/9", Value::Integer(100), Some(995.0)),
                rec("/3/0/7", Value::Float(1.5), Some(1000.0)),
                rec(
                    "/3/0/8",
                    Value::ObjLink(ObjLink {
                        object: 3,
                        instance: 1
                    }),
                    Some(1000.0)
                ),
                rec(
                    "/3/0/5",
                    Value::Opaque(Bytes::from_static(&[1, 2])),
                    Some(1000.0)
                ),
            ]
        );
    }

    #[test]
    fn every_value_kind_round_trips() {
        let records = vec![
            rec("/3/0/0", Value::String("x".into()), Some(0.25)),
            rec("/3/0/1", Value::Integer(i64::MIN), None),
            rec("/3/0/2", Value::UnsignedInteger(u64::MAX), None),
            rec("/3/0/3", Value::Float(0.1), Some(-1e300)),
            rec("/3/0/4", Value::Boolean(false), Some(1_700_000_000.0)),
            rec("/3/0/5", Value::Opaque(Bytes::from_static(&[0, 255])), None),
            rec(
                "/3/0/6",
                Value::ObjLink(ObjLink {
                    object: 65535,
                    instance: 65535,
                }),
                None,
            ),
            rec("/3/0/7", Value::None, None),
        ];
        let wire = encode_senml_cbor(&records).unwrap();
        assert_eq!(decode_senml_cbor(&wire).unwrap(), records);
    }

    #[test]
    fn bad_senml_cbor_is_refused() {
        let cases: [(&[u8], &str); 9] = [
            (&[0xA0], "a map is not a pack"),
            (&[0x81, 0x01], "a record that is not a map"),
            (&[0x81, 0xA1, 0x02, 0x01], "missing name"),
            (&[0x81, 0xA2, 0x00, 0x01, 0x02, 0x01], "name not text"),
            (
                &[0x81, 0xA2, 0x00, 0x62, b'/', b'1', 0x02, 0x61, b'1'],
                "v not a number",
            ),
            (
                &[0x81, 0xA2, 0x00, 0x62, b'/', b'1', 0x08, 0x61, b'1'],
                "vd not bytes",
            ),
            (
                &[0x81, 0xA2, 0x00, 0x62, b'/', b'1', 0x02, 0xF9, 0x7C, 0x00],
                "infinite v",
            ),
            (
                &[0x81, 0xA2, 0x00, 0x62, b'/', b'1', 0x62, b'x', b'_', 0x01],
                "must understand",
            ),
            (
                &[0x81, 0xA3, 0x00, 0x62, b'/', b'1', 0x02, 0x01, 0x04, 0xF5],
                "two values",
            ),
        ];
        for (wire, why) in cases {
            assert!(decode_senml_cbor(wire).is_err(), "{why}");
        }
        assert_eq!(
            decode_senml_cbor(&[0x81, 0xA1, 0x02, 0x01]),
            Err(SenmlError::MissingName(0))
        );
        // Too deep: an array inside a field inside a record inside the pack.
        assert_eq!(
            decode_senml_cbor(&[0x81, 0xA1, 0x02, 0x81, 0x81, 0x00]),
            Err(SenmlError::Cbor(CborError::TooDeep(MAX_CBOR_DEPTH)))
        );
        // Huge declared lengths fail before any allocation.
        assert!(matches!(
            decode_senml_cbor(&[0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(SenmlError::Cbor(CborError::LengthPastEnd { .. }))
        ));
        assert!(matches!(
            decode_senml_cbor(&[0x81, 0xA1, 0x00, 0x7A, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(SenmlError::Cbor(CborError::LengthPastEnd { .. }))
        ));
    }
}
