//! Header escaping (STOMP 1.2, "Value Encoding"); the per-version table is in the crate docs.

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::version::Escaping;

/// The error for a backslash followed by `next` (`None`: the backslash ends the field).
fn bad_escape(next: Option<u8>) -> DecodeError {
    DecodeError::BadEscape(match next {
        None => "\\".to_owned(),
        Some(byte) if byte.is_ascii_graphic() || byte == b' ' => format!("\\{}", char::from(byte)),
        Some(byte) => format!("\\x{byte:02x}"),
    })
}

/// The octet an escape `\<next>` stands for, if `escaping` defines it.
fn unescaped(next: u8, escaping: Escaping) -> Option<u8> {
    match (next, escaping) {
        (_, Escaping::None) => None,
        (b'n', _) => Some(b'\n'),
        (b'c', _) => Some(b':'),
        (b'\\', _) => Some(b'\\'),
        (b'r', Escaping::V1_2) => Some(b'\r'),
        _ => None,
    }
}

/// Checks every escape in `raw` and returns how many there are (each shrinks the field by
/// one octet when unescaped).
pub(crate) fn count_escapes(raw: &[u8], escaping: Escaping) -> Result<usize, DecodeError> {
    if escaping == Escaping::None {
        return Ok(0);
    }
    let mut count = 0;
    let mut octets = raw.iter();
    while let Some(&octet) = octets.next() {
        if octet == b'\\' {
            let next = octets.next().copied();
            match next {
                Some(next) if unescaped(next, escaping).is_some() => count += 1,
                _ => return Err(bad_escape(next)),
            }
        }
    }
    Ok(count)
}

/// Unescapes a field that contains at least one backslash.
pub(crate) fn unescape(raw: &str, escaping: Escaping) -> Result<String, DecodeError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut octets = raw.bytes();
    while let Some(octet) = octets.next() {
        if octet == b'\\' {
            let next = octets.next();
            match next.and_then(|next| unescaped(next, escaping)) {
                Some(original) => out.push(original),
                None => return Err(bad_escape(next)),
            }
        } else {
            out.push(octet);
        }
    }
    // Escapes only replace ASCII with ASCII, so valid UTF-8 stays valid.
    String::from_utf8(out).map_err(|_| DecodeError::InvalidUtf8)
}

/// What `octet` is written as in a header name (`is_name`) or value, `None` if literal.
fn replacement(octet: u8, escaping: Escaping, is_name: bool) -> Option<&'static [u8]> {
    match (octet, escaping) {
        (b'\\', Escaping::V1_1 | Escaping::V1_2) => Some(b"\\\\"),
        (b'\n', Escaping::V1_1 | Escaping::V1_2) => Some(b"\\n"),
        (b':', Escaping::V1_1 | Escaping::V1_2) => Some(b"\\c"),
        (b'\r', Escaping::V1_2) => Some(b"\\r"),
        (b'\r' | b'\n', _) => Some(b" "),
        (b':', Escaping::None) if is_name => Some(b"_"),
        _ => None,
    }
}

/// Writes a header name or value, escaped for `escaping`.
pub(crate) fn put_escaped(buf: &mut BytesMut, field: &str, escaping: Escaping, is_name: bool) {
    let field = field.as_bytes();
    let mut literal_from = 0;
    for (index, &octet) in field.iter().enumerate() {
        if let Some(replacement) = replacement(octet, escaping, is_name) {
            buf.put_slice(&field[literal_from..index]);
            buf.put_slice(replacement);
            literal_from = index + 1;
        }
    }
    buf.put_slice(&field[literal_from..]);
}
