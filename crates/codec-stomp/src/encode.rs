//! The frame encoder: writes straight into the caller's `BytesMut`.

use bytes::{BufMut, BytesMut};

use crate::decode::parse_content_length;
use crate::escape::put_escaped;
use crate::version::Escaping;
use crate::{Frame, Version};

const CONTENT_LENGTH: &str = "content-length";

/// Appends `frame` to `buf` as a `version` frame.
///
/// Headers are escaped as `version` requires (never for CONNECT, STOMP, CONNECTED; see the
/// table in the crate docs for octets a version cannot represent). The first
/// `content-length` header is kept in place, its value replaced by the body length unless
/// it already states it; later `content-length` headers are dropped (a peer taking the last
/// one would mis-frame the body); a non-empty body without one gets it appended. The frame
/// ends with NUL; no EOL is written after it.
pub fn encode(frame: &Frame, version: Version, buf: &mut BytesMut) {
    let escaping = Escaping::of(version, frame.command);
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    // Exact when nothing needs escaping: command + EOL, headers, content-length, EOL, NUL.
    buf.reserve(frame.command.as_str().len() + headers_len + frame.body.len() + 40);

    buf.put_slice(frame.command.as_str().as_bytes());
    buf.put_u8(b'\n');
    let body_len = frame.body.len();
    let mut content_length_written = false;
    for (name, value) in &frame.headers {
        if *name == CONTENT_LENGTH {
            if !content_length_written {
                content_length_written = true;
                if parse_content_length(value.as_bytes()) == Ok(body_len) {
                    put_header(buf, name, value);
                } else {
                    put_content_length(buf, body_len);
                }
            }
            continue;
        }
        put_escaped(buf, name, escaping, true);
        buf.put_u8(b':');
        put_escaped(buf, value, escaping, false);
        buf.put_u8(b'\n');
    }
    if !content_length_written && body_len > 0 {
        put_content_length(buf, body_len);
    }
    buf.put_u8(b'\n');
    buf.put_slice(&frame.body);
    buf.put_u8(0);
}

/// Appends a heart-beat: a single LF (STOMP 1.2, "Heart-beating").
pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_u8(b'\n');
}

/// Writes a header whose name and value need no escaping.
fn put_header(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_u8(b':');
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// Writes `content-length:<length>` without allocating.
fn put_content_length(buf: &mut BytesMut, length: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = length;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.put_slice(CONTENT_LENGTH.as_bytes());
    buf.put_u8(b':');
    buf.put_slice(&digits[start..]);
    buf.put_u8(b'\n');
}
