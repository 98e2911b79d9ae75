//! The message format (RFC 7252 §3): header, Token, options, payload marker and payload.
//!
//! Decoding never indexes past a length it has not checked against the datagram, and the
//! only allocation is the option list, at most one entry per octet of the datagram.
//! Values and the payload are zero-copy slices of the datagram.

use bytes::{BufMut, Bytes, BytesMut};

use crate::code::Code;
use crate::error::{DecodeError, DecodeErrorKind, EncodeError, PartialHeader};
use crate::message::Message;
use crate::msg_type::MessageType;
use crate::option::{CoapOption, Options};
use crate::token::{Token, MAX_TOKEN_LEN};

/// The only protocol version (RFC 7252 §3).
pub const VERSION: u8 = 1;
/// Octets of the fixed header.
pub const HEADER_LEN: usize = 4;
/// The octet separating options from the payload (RFC 7252 §3).
pub const PAYLOAD_MARKER: u8 = 0xFF;
/// Largest option delta or length the 4-bit field plus two extension octets can carry.
pub const MAX_EXTENDED: usize = 0xFFFF + 269;

/// Nibble announcing a one-octet extension (value − 13).
const EXT8: u8 = 13;
/// Nibble announcing a two-octet extension (value − 269).
const EXT16: u8 = 14;
/// Reserved nibble (RFC 7252 §3.1).
const RESERVED: u8 = 15;

/// Decodes the one message a datagram carries (RFC 7252 §3).
pub fn decode(datagram: Bytes) -> Result<Message, DecodeError> {
    let [first, code, id_hi, id_lo, ..] = datagram[..] else {
        return Err(DecodeError::bare(DecodeErrorKind::TruncatedHeader(
            datagram.len(),
        )));
    };
    let version = first >> 6;
    if version != VERSION {
        return Err(DecodeError::bare(DecodeErrorKind::UnsupportedVersion(
            version,
        )));
    }
    let mut header = PartialHeader {
        message_type: MessageType::from_bits(first >> 4),
        message_id: u16::from_be_bytes([id_hi, id_lo]),
        token: None,
    };
    let fail = |kind, header| Err(DecodeError::with_header(kind, header));
    let code = Code::from_byte(code);
    let token_len = first & 0x0F;
    if usize::from(token_len) > MAX_TOKEN_LEN {
        return fail(DecodeErrorKind::ReservedTokenLength(token_len), header);
    }
    if code.is_empty() && (token_len != 0 || datagram.len() > HEADER_LEN) {
        return fail(DecodeErrorKind::NonEmptyEmptyMessage, header);
    }
    let rest = &datagram[HEADER_LEN..];
    let Some(token) = rest.get(..usize::from(token_len)).and_then(Token::new) else {
        let kind = DecodeErrorKind::TruncatedToken {
            declared: token_len,
            available: rest.len(),
        };
        return fail(kind, header);
    };
    header.token = Some(token);

    let mut pos = HEADER_LEN + token.len();
    let mut number: u32 = 0;
    let mut options = Options::new();
    let mut payload = Bytes::new();
    while let Some(&byte) = datagram.get(pos) {
        pos += 1;
        if byte == PAYLOAD_MARKER {
            if pos == datagram.len() {
                return fail(DecodeErrorKind::EmptyPayload, header);
            }
            payload = datagram.slice(pos..);
            break;
        }
        let (delta_nibble, length_nibble) = (byte >> 4, byte & 0x0F);
        if delta_nibble == RESERVED {
            return fail(DecodeErrorKind::ReservedOptionDelta, header);
        }
        if length_nibble == RESERVED {
            return fail(DecodeErrorKind::ReservedOptionLength, header);
        }
        let truncated =
            |number| DecodeError::with_header(DecodeErrorKind::TruncatedOption { number }, header);
        let delta = read_extended(&datagram, &mut pos, delta_nibble).ok_or(truncated(number))?;
        number += delta as u32;
        if number > u32::from(u16::MAX) {
            return fail(DecodeErrorKind::OptionNumberOverflow(number), header);
        }
        let len = read_extended(&datagram, &mut pos, length_nibble).ok_or(truncated(number))?;
        if datagram.len() - pos < len {
            return Err(truncated(number));
        }
        let value = datagram.slice(pos..pos + len);
        pos += len;
        options.push_sorted(CoapOption {
            number: number as u16,
            value,
        });
    }
    Ok(Message {
        message_type: header.message_type,
        code,
        message_id: header.message_id,
        token,
        options,
        payload,
    })
}

/// Reads the value a delta or length nibble stands for, with its extension octets.
fn read_extended(datagram: &[u8], pos: &mut usize, nibble: u8) -> Option<usize> {
    let value = match nibble {
        EXT8 => usize::from(*datagram.get(*pos)?) + 13,
        EXT16 => {
            let ext = datagram.get(*pos..*pos + 2)?;
            usize::from(u16::from_be_bytes([ext[0], ext[1]])) + 269
        }
        _ => return Some(usize::from(nibble)),
    };
    *pos += if nibble == EXT8 { 1 } else { 2 };
    Some(value)
}

/// Appends `msg` to `buf` in the one encoding RFC 7252 §3 allows for it: shortest
/// delta/length forms, and a payload marker only before a non-empty payload.
pub fn encode(msg: &Message, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let size = encoded_len(msg)?;
    buf.reserve(size);
    buf.put_u8((VERSION << 6) | (msg.message_type.to_bits() << 4) | msg.token.len() as u8);
    buf.put_u8(msg.code.to_byte());
    buf.put_u16(msg.message_id);
    buf.put_slice(msg.token.as_bytes());
    let mut previous = 0u16;
    for opt in &msg.options {
        let delta = usize::from(opt.number - previous);
        previous = opt.number;
        let (delta_nibble, delta_ext) = split_extended(delta);
        let (length_nibble, length_ext) = split_extended(opt.value.len());
        buf.put_u8((delta_nibble << 4) | length_nibble);
        put_extension(buf, delta_nibble, delta_ext);
        put_extension(buf, length_nibble, length_ext);
        buf.put_slice(&opt.value);
    }
    if !msg.payload.is_empty() {
        buf.put_u8(PAYLOAD_MARKER);
        buf.put_slice(&msg.payload);
    }
    Ok(())
}

/// The encoded size of `msg`, checking that it can be encoded.
pub fn encoded_len(msg: &Message) -> Result<usize, EncodeError> {
    if msg.code.is_empty()
        && !(msg.token.is_empty() && msg.options.is_empty() && msg.payload.is_empty())
    {
        return Err(EncodeError::NonEmptyEmptyMessage);
    }
    let mut size = HEADER_LEN + msg.token.len();
    let mut previous = 0u16;
    for opt in &msg.options {
        if opt.value.len() > MAX_EXTENDED {
            return Err(EncodeError::OptionTooLong {
                number: opt.number,
                len: opt.value.len(),
            });
        }
        let delta = usize::from(opt.number - previous);
        previous = opt.number;
        size += 1 + extension_len(delta) + extension_len(opt.value.len()) + opt.value.len();
    }
    if !msg.payload.is_empty() {
        size += 1 + msg.payload.len();
    }
    Ok(size)
}

/// Octets of extension a delta or length of `value` needs.
fn extension_len(value: usize) -> usize {
    match value {
        0..13 => 0,
        13..269 => 1,
        _ => 2,
    }
}

/// The nibble and extension value for a delta or length (at most [`MAX_EXTENDED`]).
fn split_extended(value: usize) -> (u8, u16) {
    match value {
        0..13 => (value as u8, 0),
        13..269 => (EXT8, (value - 13) as u16),
        _ => (EXT16, (value - 269) as u16),
    }
}

/// Writes the extension octets the nibble announces.
fn put_extension(buf: &mut BytesMut, nibble: u8, ext: u16) {
    match nibble {
        EXT8 => buf.put_u8(ext as u8),
        EXT16 => buf.put_u16(ext),
        _ => {}
    }
}
