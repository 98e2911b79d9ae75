//! Binary value representations inside TLV (LwM2M 1.0 Appendix C / 1.1 Core Appendix C):
//! integers and times as 1, 2, 4 or 8 octets of big-endian two's complement, unsigned
//! integers as 1, 2, 4 or 8 octets unsigned, floats as 4 or 8 octets IEEE 754, booleans as
//! one octet 0 or 1, object links as two 16-bit ids, strings as UTF-8.
//!
//! EMQX decodes any length as an integer and writes positive integers in the fewest
//! octets *unsigned* (so 128 goes out as `0x80`, which a device reads as −128); this
//! follows the specification instead: only the listed sizes, always signed.

use bytes::Bytes;

use crate::error::ValueError;
use crate::value::{ObjLink, ResourceType, Value};

/// Interprets TLV value octets as a value of type `ty`.
pub fn decode_tlv_value(raw: &[u8], ty: ResourceType) -> Result<Value, ValueError> {
    Ok(match ty {
        ResourceType::String => Value::String(utf8(raw, ty)?),
        ResourceType::CoreLink => Value::CoreLink(utf8(raw, ty)?),
        ResourceType::Integer => Value::Integer(tlv_integer(raw)?),
        ResourceType::Time => Value::Time(tlv_time(raw)?),
        ResourceType::UnsignedInteger => Value::UnsignedInteger(tlv_unsigned(raw)?),
        ResourceType::Float => Value::Float(tlv_float(raw)?),
        ResourceType::Boolean => Value::Boolean(tlv_boolean(raw)?),
        ResourceType::ObjLink => Value::ObjLink(tlv_objlnk(raw)?),
        ResourceType::Opaque => Value::Opaque(Bytes::copy_from_slice(raw)),
        ResourceType::None if raw.is_empty() => Value::None,
        ResourceType::None => {
            return Err(ValueError::BadLength {
                ty,
                len: raw.len(),
                allowed: "0",
            })
        }
    })
}

/// The TLV value octets of `value` (the shortest allowed size for numbers).
pub fn encode_tlv_value(value: &Value) -> Bytes {
    match value {
        Value::String(s) | Value::CoreLink(s) => Bytes::copy_from_slice(s.as_bytes()),
        Value::Integer(n) | Value::Time(n) => Bytes::from(signed_octets(*n)),
        Value::UnsignedInteger(n) => {
            let all = n.to_be_bytes();
            let size = match *n {
                0..=0xFF => 1,
                0x100..=0xFFFF => 2,
                0x1_0000..=0xFFFF_FFFF => 4,
                _ => 8,
            };
            Bytes::copy_from_slice(&all[8 - size..])
        }
        Value::Float(f) => {
            let narrow = *f as f32;
            if f64::from(narrow) == *f {
                Bytes::copy_from_slice(&narrow.to_be_bytes())
            } else {
                Bytes::copy_from_slice(&f.to_be_bytes())
            }
        }
        Value::Boolean(b) => Bytes::from(vec![u8::from(*b)]),
        Value::Opaque(bytes) => bytes.clone(),
        Value::ObjLink(link) => {
            let mut out = Vec::with_capacity(4);
            out.extend_from_slice(&link.object.to_be_bytes());
            out.extend_from_slice(&link.instance.to_be_bytes());
            Bytes::from(out)
        }
        Value::None => Bytes::new(),
    }
}

/// The fewest of 1, 2, 4 or 8 octets of two's complement that hold `n`.
fn signed_octets(n: i64) -> Vec<u8> {
    let size = if i8::try_from(n).is_ok() {
        1
    } else if i16::try_from(n).is_ok() {
        2
    } else if i32::try_from(n).is_ok() {
        4
    } else {
        8
    };
    n.to_be_bytes()[8 - size..].to_vec()
}

/// A signed integer of 1, 2, 4 or 8 octets.
pub fn tlv_integer(raw: &[u8]) -> Result<i64, ValueError> {
    signed(raw, ResourceType::Integer)
}

/// A time: the same representation as an integer (seconds since 1970).
pub fn tlv_time(raw: &[u8]) -> Result<i64, ValueError> {
    signed(raw, ResourceType::Time)
}

fn signed(raw: &[u8], ty: ResourceType) -> Result<i64, ValueError> {
    Ok(match *raw {
        [a] => i8::from_be_bytes([a]).into(),
        [a, b] => i16::from_be_bytes([a, b]).into(),
        [a, b, c, d] => i32::from_be_bytes([a, b, c, d]).into(),
        [a, b, c, d, e, f, g, h] => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            return Err(ValueError::BadLength {
                ty,
                len: raw.len(),
                allowed: "1, 2, 4 or 8",
            })
        }
    })
}

/// An unsigned integer of 1, 2, 4 or 8 octets (LwM2M 1.1).
pub fn tlv_unsigned(raw: &[u8]) -> Result<u64, ValueError> {
    Ok(match *raw {
        [a] => a.into(),
        [a, b] => u16::from_be_bytes([a, b]).into(),
        [a, b, c, d] => u32::from_be_bytes([a, b, c, d]).into(),
        [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            return Err(ValueError::BadLength {
                ty: ResourceType::UnsignedInteger,
                len: raw.len(),
                allowed: "1, 2, 4 or 8",
            })
        }
    })
}

/// A float of 4 or 8 octets.
pub fn tlv_float(raw: &[u8]) -> Result<f64, ValueError> {
    Ok(match *raw {
        [a, b, c, d] => f32::from_be_bytes([a, b, c, d]).into(),
        [a, b, c, d, e, f, g, h] => f64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            return Err(ValueError::BadLength {
                ty: ResourceType::Float,
                len: raw.len(),
                allowed: "4 or 8",
            })
        }
    })
}

/// A boolean: one octet, 0 or 1.
pub fn tlv_boolean(raw: &[u8]) -> Result<bool, ValueError> {
    match *raw {
        [0] => Ok(false),
        [1] => Ok(true),
        [other] => Err(ValueError::BadBoolean(other)),
        _ => Err(ValueError::BadLength {
            ty: ResourceType::Boolean,
            len: raw.len(),
            allowed: "1",
        }),
    }
}

/// An object link: 16-bit object id then 16-bit object instance id.
pub fn tlv_objlnk(raw: &[u8]) -> Result<ObjLink, ValueError> {
    match *raw {
        [a, b, c, d] => Ok(ObjLink {
            object: u16::from_be_bytes([a, b]),
            instance: u16::from_be_bytes([c, d]),
        }),
        _ => Err(ValueError::BadLength {
            ty: ResourceType::ObjLink,
            len: raw.len(),
            allowed: "4",
        }),
    }
}

fn utf8(raw: &[u8], ty: ResourceType) -> Result<String, ValueError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| ValueError::NotUtf8(ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_fewest_signed_octets() {
        let cases: [(i64, &[u8]); 8] = [
            (0, &[0x00]),
            (100, &[0x64]),
            (127, &[0x7F]),
            (128, &[0x00, 0x80]),
            (-128, &[0x80]),
            (3800, &[0x0E, 0xD8]),
            (1_367_491_215, &[0x51, 0x82, 0x42, 0x8F]),
            (i64::MIN, &[0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (n, wire) in cases {
            assert_eq!(&encode_tlv_value(&Value::Integer(n))[..], wire, "{n}");
            assert_eq!(tlv_integer(wire), Ok(n));
            assert_eq!(
                decode_tlv_value(wire, ResourceType::Time),
                Ok(Value::Time(n))
            );
        }
        assert_eq!(tlv_integer(&[0xFF, 0xFF]), Ok(-1));
        for len in [0usize, 3, 5, 6, 7, 9] {
            assert!(tlv_integer(&vec![0; len]).is_err(), "{len}");
        }
    }

    #[test]
    fn unsigned_integers_and_floats() {
        assert_eq!(&encode_tlv_value(&Value::UnsignedInteger(255))[..], &[0xFF]);
        assert_eq!(
            &encode_tlv_value(&Value::UnsignedInteger(u64::MAX))[..],
            &[0xFF; 8]
        );
        assert_eq!(tlv_unsigned(&[0xFF, 0xFF]), Ok(65535));
        assert_eq!(
            &encode_tlv_value(&Value::Float(1.5))[..],
            &[0x3F, 0xC0, 0, 0]
        );
        assert_eq!(encode_tlv_value(&Value::Float(0.1)).len(), 8);
        assert_eq!(tlv_float(&[0x3F, 0xC0, 0, 0]), Ok(1.5));
        assert_eq!(tlv_float(&0.1f64.to_be_bytes()), Ok(0.1));
        assert!(tlv_float(&[0; 2]).is_err());
    }

    #[test]
    fn booleans_object_links_and_strings() {
        assert_eq!(tlv_boolean(&[1]), Ok(true));
        assert_eq!(tlv_boolean(&[2]), Err(ValueError::BadBoolean(2)));
        assert!(tlv_boolean(&[0, 1]).is_err());
        let link = ObjLink {
            object: 3,
            instance: 0x1234,
        };
        assert_eq!(
            &encode_tlv_value(&Value::ObjLink(link))[..],
            &[0, 3, 0x12, 0x34]
        );
        assert_eq!(tlv_objlnk(&[0, 3, 0x12, 0x34]), Ok(link));
        assert_eq!(
            decode_tlv_value(&[0xFF], ResourceType::String),
            Err(ValueError::NotUtf8(ResourceType::String))
        );
        assert_eq!(
            decode_tlv_value(b"U", ResourceType::String),
            Ok(Value::String("U".into()))
        );
        assert_eq!(decode_tlv_value(&[], ResourceType::None), Ok(Value::None));
        assert!(decode_tlv_value(&[1], ResourceType::None).is_err());
    }
}
