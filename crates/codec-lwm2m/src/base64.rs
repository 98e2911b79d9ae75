//! Base64 (RFC 4648 §4) and base64url (§5), for opaque values in text, JSON and EMQX's
//! JSON. Decoding accepts input with or without padding and refuses non-zero pad bits
//! (§3.5), so each octet string has exactly one accepted spelling per alphabet and
//! padding choice.

use crate::error::ValueError;

/// Standard-alphabet, padded base64 (RFC 4648 §4), as plain text, OMA JSON and EMQX
/// spell opaque values.
pub fn encode_base64(data: &[u8]) -> String {
    encode(data, Alphabet::Standard, true)
}

/// Decodes standard-alphabet base64, padding optional (RFC 4648 §4).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, ValueError> {
    decode(text, Alphabet::Standard)
}

/// Which 64-character alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alphabet {
    /// `+` and `/` (RFC 4648 §4).
    Standard,
    /// `-` and `_` (RFC 4648 §5).
    Url,
}

impl Alphabet {
    fn chars(self) -> &'static [u8; 64] {
        match self {
            Alphabet::Standard => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            }
            Alphabet::Url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        }
    }

    fn index(self, c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' if self == Alphabet::Standard => 62,
            b'/' if self == Alphabet::Standard => 63,
            b'-' if self == Alphabet::Url => 62,
            b'_' if self == Alphabet::Url => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
}

/// Encodes `data`, with `=` padding when `pad`.
pub(crate) fn encode(data: &[u8], alphabet: Alphabet, pad: bool) -> String {
    let chars = alphabet.chars();
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let emit = chunk.len() + 1;
        for i in 0..4 {
            if i < emit {
                out.push(char::from(chars[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes `text`; padding is optional but, when present, must complete the last quantum.
pub(crate) fn decode(text: &str, alphabet: Alphabet) -> Result<Vec<u8>, ValueError> {
    let raw = text.as_bytes();
    let unpadded = raw.strip_suffix(b"==").or_else(|| raw.strip_suffix(b"="));
    let body = match unpadded {
        Some(body) if !raw.len().is_multiple_of(4) || body.len().is_multiple_of(4) => {
            return Err(ValueError::BadBase64(body.len()));
        }
        Some(body) => body,
        None => raw,
    };
    if body.len() % 4 == 1 {
        return Err(ValueError::BadBase64(body.len() - 1));
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for (chunk_no, chunk) in body.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = alphabet
                .index(c)
                .ok_or(ValueError::BadBase64(chunk_no * 4 + i))?;
            n |= v << (18 - 6 * i);
        }
        let octets = chunk.len() - 1;
        let bytes = n.to_be_bytes();
        // The bits below the last whole octet must be zero (RFC 4648 §3.5).
        let kept = 8 * octets;
        if n & ((1u32 << (24 - kept)) - 1) != 0 {
            return Err(ValueError::BadBase64(chunk_no * 4 + chunk.len() - 1));
        }
        out.extend_from_slice(&bytes[1..1 + octets]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes(), Alphabet::Standard, true), encoded);
            assert_eq!(
                decode(encoded, Alphabet::Standard).unwrap(),
                plain.as_bytes()
            );
            let bare = encoded.trim_end_matches('=');
            assert_eq!(encode(plain.as_bytes(), Alphabet::Url, false), bare);
            assert_eq!(decode(bare, Alphabet::Url).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn alphabets_differ_in_two_characters() {
        let data = [0xFB, 0xFF, 0xBF];
        assert_eq!(encode(&data, Alphabet::Standard, true), "+/+/");
        assert_eq!(encode(&data, Alphabet::Url, false), "-_-_");
        assert!(decode("+/+/", Alphabet::Url).is_err());
        assert!(decode("-_-_", Alphabet::Standard).is_err());
    }

    #[test]
    fn malformed_base64_is_refused() {
        for bad in [
            "Z", "Zg=", "Zg===", "Zh==", "Zm9=", "Zm 9v", "Zg==Zg==", "=",
        ] {
            assert!(decode(bad, Alphabet::Standard).is_err(), "{bad:?}");
        }
    }
}
