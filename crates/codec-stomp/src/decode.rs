//! The frame decoder.
//!
//! Decoding is two passes over the buffered bytes. [`Decoder::scan`] walks the command and
//! header lines on the borrowed buffer, validating each line as soon as its EOL has arrived
//! and enforcing the limits on unfinished lines too, until it knows where the frame ends;
//! it allocates nothing. Only then is the frame split off and frozen, and
//! [`build`] slices the command-free header block into zero-copy [`ByteString`]s (a field
//! is copied only when it contains an escape) and the body into a [`Bytes`].
//!
//! The decoder keeps no state between calls, so a frame arriving in pieces is re-scanned
//! from its start on each call; the limits bound that work (a few KB of headers, one pass
//! over at most `max_body_length` body octets looking for the NUL).

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::escape::{count_escapes, unescape};
use crate::version::Escaping;
use crate::{Command, Frame, Item, Limits, Version};

/// Decodes a stream of STOMP frames and heart-beats from one connection.
///
/// `version` selects the header escaping (set it once CONNECT / CONNECTED has negotiated
/// it; CONNECT, STOMP and CONNECTED are never unescaped whatever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// The connection's protocol version.
    pub version: Version,
    /// Limits on each incoming frame.
    pub limits: Limits,
}

impl Default for Decoder {
    /// STOMP 1.2 with EMQX's default limits.
    fn default() -> Self {
        Decoder::new(Version::V1_2, Limits::default())
    }
}

/// Where the parts of a complete frame lie in the buffer.
#[derive(Debug)]
struct Layout {
    command: Command,
    escaping: Escaping,
    /// The header lines with their EOLs, without the blank line ending them.
    headers: Range<usize>,
    header_count: usize,
    /// The body octets; the NUL follows at `body.end`.
    body: Range<usize>,
}

impl Decoder {
    /// A decoder for `version` enforcing `limits`.
    pub fn new(version: Version, limits: Limits) -> Decoder {
        Decoder { version, limits }
    }

    /// Decodes the next frame or heart-beat from the front of `buf`.
    ///
    /// `Ok(Some(_))` consumes exactly the item's octets; `Ok(None)` means more input is
    /// needed and consumes nothing; `Err` consumes nothing and is fatal for the
    /// connection. Each EOL between frames (`\n` or `\r\n`, including those trailing a
    /// frame) is one [`Item::HeartBeat`]; they are not coalesced.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        match buf.first() {
            None => return Ok(None),
            Some(b'\n') => {
                buf.advance(1);
                return Ok(Some(Item::HeartBeat));
            }
            Some(b'\r') if buf.get(1) == Some(&b'\n') => {
                buf.advance(2);
                return Ok(Some(Item::HeartBeat));
            }
            Some(_) => {}
        }
        let Some(layout) = self.scan(buf)? else {
            return Ok(None);
        };
        let frame = buf.split_to(layout.body.end + 1).freeze();
        build(&frame, &layout).map(|frame| Some(Item::Frame(frame)))
    }

    /// Finds the end of the frame at the front of `buf`, validating as it goes.
    fn scan(&self, buf: &[u8]) -> Result<Option<Layout>, DecodeError> {
        let limits = &self.limits;
        let Some(command_end) = find_byte(buf, b'\n') else {
            let partial = strip_cr(buf);
            if partial.len() > Command::MAX_LEN || !Command::could_start(partial) {
                return Err(unknown_command(buf));
            }
            return Ok(None);
        };
        let command_line = strip_cr(&buf[..command_end]);
        let command =
            Command::from_bytes(command_line).ok_or_else(|| unknown_command(command_line))?;
        let escaping = Escaping::of(self.version, command);
        // The longest line a header within the limit can take: every octet escaped, plus
        // the colon. Anything longer is rejected before its EOL arrives.
        let max_line = match escaping {
            Escaping::None => limits.max_headers_length.saturating_add(1),
            Escaping::V1_1 | Escaping::V1_2 => limits
                .max_headers_length
                .saturating_mul(2)
                .saturating_add(1),
        };

        let headers_start = command_end + 1;
        let mut line_start = headers_start;
        let mut header_count = 0usize;
        let mut content_length = None;
        let body_start = loop {
            let Some(line_end) = find_byte(&buf[line_start..], b'\n').map(|at| line_start + at)
            else {
                let partial = strip_cr(&buf[line_start..]);
                if !partial.is_empty() {
                    if header_count >= limits.max_headers {
                        return Err(DecodeError::TooManyHeaders {
                            max: limits.max_headers,
                        });
                    }
                    if partial.len() > max_line {
                        return Err(DecodeError::TooLongHeader {
                            max: limits.max_headers_length,
                        });
                    }
                }
                return Ok(None);
            };
            let line = strip_cr(&buf[line_start..line_end]);
            if line.is_empty() {
                break line_end + 1;
            }
            header_count += 1;
            if header_count > limits.max_headers {
                return Err(DecodeError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
            let (name, value) = check_header(line, escaping, limits)?;
            if content_length.is_none() && name == b"content-length" {
                let length = parse_content_length(value)?;
                if length > limits.max_body_length {
                    return Err(DecodeError::TooLongBody {
                        max: limits.max_body_length,
                    });
                }
                content_length = Some(length);
            }
            line_start = line_end + 1;
        };
        let headers = headers_start..line_start;

        let body_end = match content_length {
            Some(length) => {
                // `length` is within `max_body_length`, but that may be `usize::MAX`.
                let Some(body_end) = body_start.checked_add(length) else {
                    return Err(DecodeError::TooLongBody {
                        max: limits.max_body_length,
                    });
                };
                match buf.get(body_end) {
                    None => return Ok(None),
                    Some(0) => body_end,
                    Some(_) => return Err(DecodeError::MissingNul),
                }
            }
            None => match find_byte(&buf[body_start..], 0) {
                Some(length) if length > limits.max_body_length => {
                    return Err(DecodeError::TooLongBody {
                        max: limits.max_body_length,
                    });
                }
                Some(length) => body_start + length,
                None if buf.len() - body_start > limits.max_body_length => {
                    return Err(DecodeError::TooLongBody {
                        max: limits.max_body_length,
                    });
                }
                None => return Ok(None),
            },
        };
        Ok(Some(Layout {
            command,
            escaping,
            headers,
            header_count,
            body: body_start..body_end,
        }))
    }
}

/// Validates one header line (without its EOL) and splits it at the first colon.
fn check_header<'a>(
    line: &'a [u8],
    escaping: Escaping,
    limits: &Limits,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    if line.contains(&b'\r') {
        return Err(DecodeError::BareCarriageReturn);
    }
    let colon = find_byte(line, b':').ok_or(DecodeError::MissingColon)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() {
        return Err(DecodeError::EmptyHeaderName);
    }
    let escapes = count_escapes(name, escaping)? + count_escapes(value, escaping)?;
    if name.len() + value.len() - escapes > limits.max_headers_length {
        return Err(DecodeError::TooLongHeader {
            max: limits.max_headers_length,
        });
    }
    if std::str::from_utf8(line).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok((name, value))
}

/// Parses a `content-length` value: one or more ASCII digits. A number too large for
/// `usize` saturates (it is over any body limit anyway).
pub(crate) fn parse_content_length(value: &[u8]) -> Result<usize, DecodeError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadContentLength(
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(value.iter().fold(0usize, |length, digit| {
        length
            .saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'))
    }))
}

/// Builds the frame from its frozen octets (second pass; `scan` validated everything).
fn build(frame: &Bytes, layout: &Layout) -> Result<Frame, DecodeError> {
    let mut headers = Vec::with_capacity(layout.header_count);
    if !layout.headers.is_empty() {
        let block = ByteString::try_from(frame.slice(layout.headers.clone()))
            .map_err(|_| DecodeError::InvalidUtf8)?;
        for line in block.split_terminator('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (name, value) = line.split_once(':').ok_or(DecodeError::MissingColon)?;
            headers.push((
                field(&block, name, layout.escaping)?,
                field(&block, value, layout.escaping)?,
            ));
        }
    }
    Ok(Frame {
        command: layout.command,
        headers,
        body: frame.slice(layout.body.clone()),
    })
}

/// A header name or value: a slice of the header block unless it must be unescaped.
fn field(block: &ByteString, raw: &str, escaping: Escaping) -> Result<ByteString, DecodeError> {
    if escaping != Escaping::None && raw.contains('\\') {
        unescape(raw, escaping).map(ByteString::from)
    } else {
        Ok(block.slice_ref(raw))
    }
}

/// `line` without one trailing CR (the CR of a CR LF end-of-line).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn unknown_command(line: &[u8]) -> DecodeError {
    let shown = &line[..line.len().min(32)];
    DecodeError::UnknownCommand(String::from_utf8_lossy(shown).into_owned())
}

/// The index of the first `needle` in `haystack`, eight octets at a time.
pub(crate) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let diff = u64::from_le_bytes(word) ^ pattern;
        // Non-zero exactly when some octet of `diff` is zero, i.e. equals `needle`.
        if diff.wrapping_sub(ONES) & !diff & HIGHS != 0 {
            return chunk
                .iter()
                .position(|&octet| octet == needle)
                .map(|at| offset + at);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&octet| octet == needle)
        .map(|at| offset + at)
}
