//! A small bounded CBOR (RFC 8949) reader and writer for the subset SenML uses
//! (RFC 8428 §6): unsigned and negative integers, half/single/double floats, byte and
//! text strings, arrays, maps, `false`, `true`, `null` and `undefined`.
//!
//! The reader checks every declared length against the octets left *before* allocating
//! (a count of items cannot exceed the octets left, as each item takes at least one),
//! bounds array/map nesting, and refuses tags, indefinite-length strings and other simple
//! values as outside the subset. Indefinite-length arrays and maps are read. The writer
//! uses the shortest head for every argument and the shortest float that keeps the value
//! (single or double).

use crate::error::CborError;

/// A decoded CBOR data item of the SenML subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Cbor {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`.
    Negative(u64),
    /// Major type 7, half, single or double precision.
    Float(f64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Cbor>),
    /// Major type 5, pairs in input order.
    Map(Vec<(Cbor, Cbor)>),
    /// Simple values 20 and 21.
    Bool(bool),
    /// Simple value 22.
    Null,
    /// Simple value 23.
    Undefined,
}

impl Cbor {
    /// The integer as an `i128` (both major types), or `None` for other items.
    pub fn as_integer(&self) -> Option<i128> {
        match *self {
            Cbor::Unsigned(n) => Some(n.into()),
            Cbor::Negative(n) => Some(-1 - i128::from(n)),
            _ => None,
        }
    }

    /// The integer `n` as the item of the right major type.
    pub fn integer(n: i64) -> Cbor {
        if n >= 0 {
            Cbor::Unsigned(n.unsigned_abs())
        } else {
            Cbor::Negative((-1 - n).unsigned_abs())
        }
    }
}

/// Decodes the single CBOR item `input` holds, with arrays and maps nested at most
/// `max_depth` deep.
pub fn decode_cbor(input: &[u8], max_depth: usize) -> Result<Cbor, CborError> {
    let mut reader = Reader {
        input,
        pos: 0,
        max_depth,
    };
    let item = reader.item(0)?;
    let trailing = input.len() - reader.pos;
    if trailing != 0 {
        return Err(CborError::Trailing(trailing));
    }
    Ok(item)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

/// The argument of a head: a value, or indefinite length (additional information 31).
enum Argument {
    Value(u64),
    Indefinite,
}

const BREAK: u8 = 0xFF;

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|end| *end <= self.input.len())
            .ok_or(CborError::Truncated(start))?;
        self.pos = end;
        Ok(&self.input[start..end])
    }

    /// Reads a head: major type, additional information and argument.
    fn head(&mut self) -> Result<(u8, u8, Argument), CborError> {
        let at = self.pos;
        let initial = self.take(1)?[0];
        let major = initial >> 5;
        let info = initial & 0x1F;
        let argument = match info {
            0..=23 => Argument::Value(info.into()),
            24..=27 => {
                let size = 1usize << (info - 24);
                let octets = self.take(size)?;
                Argument::Value(octets.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
            }
            28..=30 => return Err(CborError::Reserved(initial, at)),
            _ => Argument::Indefinite,
        };
        Ok((major, info, argument))
    }

    /// A declared count or length, checked against the octets left (`unit` octets at
    /// least per counted thing).
    fn checked_len(&self, at: usize, declared: u64, unit: u64) -> Result<usize, CborError> {
        let available = self.remaining();
        match declared.checked_mul(unit) {
            Some(needed) if needed <= available as u64 => {
                usize::try_from(declared).map_err(|_| CborError::Truncated(at))
            }
            _ => Err(CborError::LengthPastEnd {
                offset: at,
                declared,
                available,
            }),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Cbor, CborError> {
        let at = self.pos;
        let (major, info, argument) = self.head()?;
        match (major, argument) {
            (0, Argument::Value(n)) => Ok(Cbor::Unsigned(n)),
            (1, Argument::Value(n)) => Ok(Cbor::Negative(n)),
            (0 | 1 | 6, Argument::Indefinite) => Err(CborError::Reserved(0x1F | major << 5, at)),
            (2 | 3, Argument::Indefinite) => {
                Err(CborError::Unsupported("indefinite-length string", at))
            }
            (2, Argument::Value(n)) => {
                let len = self.checked_len(at, n, 1)?;
                Ok(Cbor::Bytes(self.take(len)?.to_vec()))
            }
            (3, Argument::Value(n)) => {
                let len = self.checked_len(at, n, 1)?;
                let raw = self.take(len)?;
                let text = std::str::from_utf8(raw).map_err(|_| CborError::NotUtf8(at))?;
                Ok(Cbor::Text(text.to_owned()))
            }
            (4 | 5, argument) => {
                if depth >= self.max_depth {
                    return Err(CborError::TooDeep(self.max_depth));
                }
                if major == 4 {
                    self.array(at, argument, depth + 1)
                } else {
                    self.map(at, argument, depth + 1)
                }
            }
            (6, _) => Err(CborError::Unsupported("tag", at)),
            (_, argument) => simple(info, argument, at),
        }
    }

    fn array(&mut self, at: usize, argument: Argument, depth: usize) -> Result<Cbor, CborError> {
        let mut items = Vec::new();
        match argument {
            Argument::Value(n) => {
                let count = self.checked_len(at, n, 1)?;
                items.reserve_exact(count);
                for _ in 0..count {
                    items.push(self.item(depth)?);
                }
            }
            Argument::Indefinite => {
                while !self.at_break()? {
                    items.push(self.item(depth)?);
                }
            }
        }
        Ok(Cbor::Array(items))
    }

    fn map(&mut self, at: usize, argument: Argument, depth: usize) -> Result<Cbor, CborError> {
        let mut pairs = Vec::new();
        match argument {
            Argument::Value(n) => {
                let count = self.checked_len(at, n, 2)?;
                pairs.reserve_exact(count);
                for _ in 0..count {
                    let key = self.item(depth)?;
                    pairs.push((key, self.item(depth)?));
                }
            }
            Argument::Indefinite => {
                while !self.at_break()? {
                    let key = self.item(depth)?;
                    pairs.push((key, self.item(depth)?));
                }
            }
        }
        Ok(Cbor::Map(pairs))
    }

    /// Consumes a `break` if one is next; an input ending first is truncated.
    fn at_break(&mut self) -> Result<bool, CborError> {
        match self.input.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(CborError::Truncated(self.pos)),
        }
    }
}

/// Major type 7.
fn simple(info: u8, argument: Argument, at: usize) -> Result<Cbor, CborError> {
    let Argument::Value(bits) = argument else {
        return Err(CborError::UnexpectedBreak(at));
    };
    match info {
        20 => Ok(Cbor::Bool(false)),
        21 => Ok(Cbor::Bool(true)),
        22 => Ok(Cbor::Null),
        23 => Ok(Cbor::Undefined),
        25 => Ok(Cbor::Float(half_to_f64(bits as u16))),
        26 => Ok(Cbor::Float(f32::from_bits(bits as u32).into())),
        27 => Ok(Cbor::Float(f64::from_bits(bits))),
        _ => Err(CborError::Unsupported("simple value", at)),
    }
}

/// IEEE 754 binary16 to f64 (RFC 8949 Appendix D).
fn half_to_f64(half: u16) -> f64 {
    let exponent = i32::from((half >> 10) & 0x1F);
    let mantissa = f64::from(half & 0x3FF);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
    };
    if half & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Appends the encoding of `item` to `out`.
pub fn encode_cbor(item: &Cbor, out: &mut Vec<u8>) {
    match item {
        Cbor::Unsigned(n) => put_head(out, 0, *n),
        Cbor::Negative(n) => put_head(out, 1, *n),
        Cbor::Bytes(bytes) => {
            put_head(out, 2, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        Cbor::Text(text) => {
            put_head(out, 3, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        Cbor::Array(items) => {
            put_head(out, 4, items.len() as u64);
            for item in items {
                encode_cbor(item, out);
            }
        }
        Cbor::Map(pairs) => {
            put_head(out, 5, pairs.len() as u64);
            for (key, value) in pairs {
                encode_cbor(key, out);
                encode_cbor(value, out);
            }
        }
        Cbor::Float(f) => {
            let single = *f as f32;
            if f64::from(single) == *f {
                out.push(0xFA);
                out.extend_from_slice(&single.to_bits().to_be_bytes());
            } else {
                out.push(0xFB);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
        }
        Cbor::Bool(false) => out.push(0xF4),
        Cbor::Bool(true) => out.push(0xF5),
        Cbor::Null => out.push(0xF6),
        Cbor::Undefined => out.push(0xF7),
    }
}

fn put_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xFF => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xFFFF => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(item: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        encode_cbor(item, &mut out);
        out
    }

    #[test]
    fn rfc_8949_appendix_a_examples() {
        let cases: Vec<(Cbor, &[u8])> = vec![
            (Cbor::Unsigned(0), &[0x00]),
            (Cbor::Unsigned(23), &[0x17]),
            (Cbor::Unsigned(24), &[0x18, 0x18]),
            (Cbor::Unsigned(1000), &[0x19, 0x03, 0xE8]),
            (Cbor::Unsigned(1_000_000), &[0x1A, 0x00, 0x0F, 0x42, 0x40]),
            (
                Cbor::Unsigned(u64::MAX),
                &[0x1B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
            (Cbor::integer(-1), &[0x20]),
            (Cbor::integer(-1000), &[0x39, 0x03, 0xE7]),
            (Cbor::Float(100_000.0), &[0xFA, 0x47, 0xC3, 0x50, 0x00]),
            (
                Cbor::Float(1.1),
                &[0xFB, 0x3F, 0xF1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A],
            ),
            (Cbor::Bool(true), &[0xF5]),
            (Cbor::Null, &[0xF6]),
            (Cbor::Text("IETF".into()), &[0x64, 0x49, 0x45, 0x54, 0x46]),
            (Cbor::Bytes(vec![1, 2, 3, 4]), &[0x44, 1, 2, 3, 4]),
            (
                Cbor::Array(vec![Cbor::Unsigned(1), Cbor::Unsigned(2)]),
                &[0x82, 0x01, 0x02],
            ),
            (
                Cbor::Map(vec![(Cbor::Text("a".into()), Cbor::Unsigned(1))]),
                &[0xA1, 0x61, 0x61, 0x01],
            ),
        ];
        for (item, wire) in cases {
            assert_eq!(encoded(&item), wire, "{item:?}");
            assert_eq!(decode_cbor(wire, 4), Ok(item));
        }
    }

    #[test]
    fn half_floats_decode() {
        for (wire, value) in [
            ([0xF9, 0x00, 0x00], 0.0),
            ([0xF9, 0x3C, 0x00], 1.0),
            ([0xF9, 0x3E, 0x00], 1.5),
            ([0xF9, 0x7B, 0xFF], 65504.0),
            ([0xF9, 0x00, 0x01], 5.960_464_477_539_063e-8),
            ([0xF9, 0xC4, 0x00], -4.0),
            ([0xF9, 0x7C, 0x00], f64::INFINITY),
        ] {
            assert_eq!(decode_cbor(&wire, 1), Ok(Cbor::Float(value)), "{wire:02X?}");
        }
        assert!(matches!(decode_cbor(&[0xF9, 0x7E, 0x00], 1), Ok(Cbor::Float(f)) if f.is_nan()));
    }

    #[test]
    fn indefinite_arrays_and_maps_are_read() {
        assert_eq!(
            decode_cbor(&[0x9F, 0x01, 0xBF, 0x00, 0x02, 0xFF, 0xFF], 4),
            Ok(Cbor::Array(vec![
                Cbor::Unsigned(1),
                Cbor::Map(vec![(Cbor::Unsigned(0), Cbor::Unsigned(2))]),
            ]))
        );
        assert_eq!(decode_cbor(&[0x9F, 0x01], 4), Err(CborError::Truncated(2)));
    }

    #[test]
    fn nesting_beyond_the_bound_is_refused() {
        let deep = vec![0x81u8; 100_000];
        assert_eq!(decode_cbor(&deep, 8), Err(CborError::TooDeep(8)));
        assert_eq!(
            decode_cbor(&[0x81, 0x81, 0x00], 2),
            Ok(Cbor::Array(vec![Cbor::Array(vec![Cbor::Unsigned(0)])]))
        );
        assert_eq!(
            decode_cbor(&[0x81, 0x81, 0x81, 0x00], 2),
            Err(CborError::TooDeep(2))
        );
    }

    #[test]
    fn huge_declared_lengths_are_refused_before_allocating() {
        // A byte string, text, array and map each declaring 2^64-1 of something.
        for initial in [0x5B, 0x7B, 0x9B, 0xBB] {
            let mut wire = vec![initial];
            wire.extend_from_slice(&[0xFF; 8]);
            assert!(
                matches!(
                    decode_cbor(&wire, 4),
                    Err(CborError::LengthPastEnd {
                        declared: u64::MAX,
                        ..
                    })
                ),
                "{initial:#04x}"
            );
        }
        assert_eq!(
            decode_cbor(&[0x83, 0x01, 0x02], 4),
            Err(CborError::LengthPastEnd {
                offset: 0,
                declared: 3,
                available: 2
            })
        );
        assert_eq!(
            decode_cbor(&[0xA2, 0x01, 0x02, 0x03], 4),
            Err(CborError::LengthPastEnd {
                offset: 0,
                declared: 2,
                available: 3
            })
        );
    }

    #[test]
    fn malformed_and_unsupported_items_are_refused() {
        assert_eq!(decode_cbor(&[], 4), Err(CborError::Truncated(0)));
        assert_eq!(decode_cbor(&[0x19, 0x01], 4), Err(CborError::Truncated(1)));
        assert_eq!(decode_cbor(&[0x1C], 4), Err(CborError::Reserved(0x1C, 0)));
        assert_eq!(decode_cbor(&[0x1F], 4), Err(CborError::Reserved(0x1F, 0)));
        assert_eq!(decode_cbor(&[0xFF], 4), Err(CborError::UnexpectedBreak(0)));
        assert_eq!(
            decode_cbor(&[0xC1, 0x00], 4),
            Err(CborError::Unsupported("tag", 0))
        );
        assert_eq!(
            decode_cbor(&[0x5F, 0x41, 0x00, 0xFF], 4),
            Err(CborError::Unsupported("indefinite-length string", 0))
        );
        assert_eq!(
            decode_cbor(&[0xF8, 0x20], 4),
            Err(CborError::Unsupported("simple value", 0))
        );
        assert_eq!(
            decode_cbor(&[0x62, 0xFF, 0xFE], 4),
            Err(CborError::NotUtf8(0))
        );
        assert_eq!(decode_cbor(&[0x00, 0x00], 4), Err(CborError::Trailing(1)));
    }
}
