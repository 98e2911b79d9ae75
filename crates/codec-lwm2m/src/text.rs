//! Single-value formats: plain text (content format 0, LwM2M 1.1 Core §7.4.1) and opaque
//! (42, §7.4.2).
//!
//! Plain text spells integers, unsigned integers and times in decimal, floats in
//! decimal, booleans as `0`/`1`, object links as `ObjectId:InstanceId` and opaque
//! values in base64 (LwM2M 1.1 Core §7.4.1, Appendix C). Decoding also takes `true` and
//! `false` for booleans — and maps them the right way round, where EMQX inverts them.

use bytes::Bytes;

use crate::base64::{self, Alphabet};
use crate::error::ValueError;
use crate::value::{truncate, ResourceType, Value};

/// Decodes a plain-text payload as a value of type `ty`.
pub fn decode_text(payload: &[u8], ty: ResourceType) -> Result<Value, ValueError> {
    let text = std::str::from_utf8(payload).map_err(|_| ValueError::NotUtf8(ty))?;
    let bad = || ValueError::BadText {
        ty,
        text: truncate(text),
    };
    Ok(match ty {
        ResourceType::String => Value::String(text.to_owned()),
        ResourceType::CoreLink => Value::CoreLink(text.to_owned()),
        ResourceType::Integer => Value::Integer(text.parse().map_err(|_| bad())?),
        ResourceType::Time => Value::Time(text.parse().map_err(|_| bad())?),
        ResourceType::UnsignedInteger => Value::UnsignedInteger(text.parse().map_err(|_| bad())?),
        ResourceType::Float => {
            let decimal = text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            let value: f64 = text.parse().map_err(|_| bad())?;
            if !decimal || !value.is_finite() {
                return Err(bad());
            }
            Value::Float(value)
        }
        ResourceType::Boolean => match text {
            "1" | "true" => Value::Boolean(true),
            "0" | "false" => Value::Boolean(false),
            _ => return Err(bad()),
        },
        ResourceType::ObjLink => Value::ObjLink(text.parse()?),
        ResourceType::Opaque => {
            Value::Opaque(Bytes::from(base64::decode(text, Alphabet::Standard)?))
        }
        ResourceType::None if text.is_empty() => Value::None,
        ResourceType::None => return Err(bad()),
    })
}

/// Encodes a value as a plain-text payload. Only a non-finite float has no spelling.
pub fn encode_text(value: &Value) -> Result<String, ValueError> {
    Ok(match value {
        Value::String(s) | Value::CoreLink(s) => s.clone(),
        Value::Integer(n) | Value::Time(n) => n.to_string(),
        Value::UnsignedInteger(n) => n.to_string(),
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Float(_) => {
            return Err(ValueError::WrongType {
                expected: "finite Float",
                found: "NaN or infinite Float",
            })
        }
        Value::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::ObjLink(link) => link.to_string(),
        Value::Opaque(bytes) => base64::encode(bytes, Alphabet::Standard, true),
        Value::None => String::new(),
    })
}

/// Decodes an opaque payload: the octets are the value.
pub fn decode_opaque(payload: Bytes) -> Value {
    Value::Opaque(payload)
}

/// Encodes an opaque value; the opaque format carries nothing else (§7.4.2).
pub fn encode_opaque(value: &Value) -> Result<Bytes, ValueError> {
    match value {
        Value::Opaque(bytes) => Ok(bytes.clone()),
        other => Err(ValueError::WrongType {
            expected: "Opaque",
            found: other.kind_name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ObjLink;

    #[test]
    fn the_spec_example_reads_as_a_string() {
        assert_eq!(
            decode_text(b"Open Mobile Alliance", ResourceType::String),
            Ok(Value::String("Open Mobile Alliance".into()))
        );
    }

    #[test]
    fn every_type_round_trips_through_text() {
        let values = [
            Value::String("x y".into()),
            Value::Integer(-42),
            Value::UnsignedInteger(u64::MAX),
            Value::Float(0.1),
            Value::Float(-3.0),
            Value::Boolean(true),
            Value::Boolean(false),
            Value::Opaque(Bytes::from_static(&[1, 2, 3, 4, 5])),
            Value::Time(1_367_491_215),
            Value::ObjLink(ObjLink {
                object: 3,
                instance: 0,
            }),
            Value::CoreLink("</3/0>".into()),
            Value::None,
        ];
        for value in values {
            let text = encode_text(&value).unwrap();
            assert_eq!(
                decode_text(text.as_bytes(), value.resource_type()),
                Ok(value.clone()),
                "{text}"
            );
        }
        assert_eq!(encode_text(&Value::Boolean(true)).unwrap(), "1");
        assert_eq!(
            encode_text(&Value::Opaque(Bytes::from_static(&[1, 2, 3, 4, 5]))).unwrap(),
            "AQIDBAU="
        );
    }

    #[test]
    fn booleans_are_not_inverted() {
        assert_eq!(
            decode_text(b"true", ResourceType::Boolean),
            Ok(Value::Boolean(true))
        );
        assert_eq!(
            decode_text(b"false", ResourceType::Boolean),
            Ok(Value::Boolean(false))
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for (text, ty) in [
            (&b"12a"[..], ResourceType::Integer),
            (b"1.5", ResourceType::Integer),
            (b"-1", ResourceType::UnsignedInteger),
            (b"NaN", ResourceType::Float),
            (b"inf", ResourceType::Float),
            (b"1e999", ResourceType::Float),
            (b"2", ResourceType::Boolean),
            (b"3", ResourceType::ObjLink),
            (b"!!", ResourceType::Opaque),
            (b"x", ResourceType::None),
            (b"\xFF", ResourceType::String),
        ] {
            assert!(decode_text(text, ty).is_err(), "{text:?} as {ty:?}");
        }
        assert!(encode_text(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn opaque_carries_only_opaque_values() {
        let raw = Bytes::from_static(b"\x00\xFF");
        assert_eq!(decode_opaque(raw.clone()), Value::Opaque(raw.clone()));
        assert_eq!(encode_opaque(&Value::Opaque(raw.clone())), Ok(raw));
        assert!(encode_opaque(&Value::Integer(1)).is_err());
    }
}
