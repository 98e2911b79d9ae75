//! Wire primitives: the message header (§5.2) and a bounds-checked reader for the
//! variable part. Nothing here indexes or advances past a length it has not checked.

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};

/// First octet announcing the three-octet Length form (§5.2.1).
pub(crate) const LONG_FORM: u8 = 0x01;
/// Largest message whose Length fits the one-octet form (the octet counts itself).
pub(crate) const MAX_SHORT_LEN: usize = 0xFF;
/// Largest message the three-octet form can describe.
pub(crate) const MAX_LEN: usize = 0xFFFF;

/// The header of a message: where its variable part starts and what type it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Octets taken by Length and MsgType: 2 (short form) or 4 (long form).
    pub(crate) len: usize,
    /// The MsgType octet.
    pub(crate) msg_type: u8,
}

/// The MsgType of `datagram` if its header is there, without checking its Length.
pub(crate) fn peek_type(datagram: &[u8]) -> Option<u8> {
    match datagram {
        [LONG_FORM, _, _, msg_type, ..] => Some(*msg_type),
        [LONG_FORM, ..] => None,
        [_, msg_type, ..] => Some(*msg_type),
        _ => None,
    }
}

/// Reads the header of `datagram` and checks that its Length equals the datagram's size.
pub(crate) fn parse_header(datagram: &[u8]) -> Result<Header, DecodeError> {
    let (declared, header_len) = match datagram {
        [] | [_] => return Err(DecodeError::TooShort(datagram.len())),
        [LONG_FORM, rest @ ..] => match rest {
            [hi, lo, _msg_type, ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), 4),
            _ => return Err(DecodeError::TooShort(datagram.len())),
        },
        [len, ..] => (usize::from(*len), 2),
    };
    if declared < header_len {
        return Err(DecodeError::LengthTooSmall {
            declared,
            header: header_len,
        });
    }
    if declared != datagram.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: datagram.len(),
        });
    }
    Ok(Header {
        len: header_len,
        msg_type: datagram[header_len - 1],
    })
}

/// Total message size for a variable part of `body_len` octets: the one-octet Length form
/// whenever the whole message fits in 255 octets (§5.2.1: "messages with lengths smaller
/// than 256 octets may use the shorter 1-octet format"), else the three-octet form.
pub(crate) fn frame_len(body_len: usize) -> Result<usize, EncodeError> {
    let short = body_len + 2;
    if short <= MAX_SHORT_LEN {
        return Ok(short);
    }
    let long = body_len + 4;
    if long <= MAX_LEN {
        Ok(long)
    } else {
        Err(EncodeError::TooLong(long))
    }
}

/// Length and MsgType for a message of `total` octets (from [`frame_len`]): the header
/// octets and how many of them are used (2 or 4).
pub(crate) fn header(total: usize, msg_type: u8) -> ([u8; 4], usize) {
    if total <= MAX_SHORT_LEN {
        ([total as u8, msg_type, 0, 0], 2)
    } else {
        let [hi, lo] = (total as u16).to_be_bytes();
        ([LONG_FORM, hi, lo, msg_type], 4)
    }
}

/// A bounds-checked cursor over a message's variable part.
pub(crate) struct Reader {
    body: Bytes,
    msg_type: u8,
    min: usize,
    len: usize,
}

impl Reader {
    /// A reader over `body`, which must hold `min..=max` octets.
    pub(crate) fn new(
        msg_type: u8,
        body: Bytes,
        min: usize,
        max: Option<usize>,
    ) -> Result<Self, DecodeError> {
        let len = body.len();
        if len < min {
            return Err(DecodeError::BodyTooShort { msg_type, len, min });
        }
        if let Some(max) = max.filter(|&max| len > max) {
            return Err(DecodeError::BodyTooLong { msg_type, len, max });
        }
        Ok(Reader {
            body,
            msg_type,
            min,
            len,
        })
    }

    /// A reader over `body`, which must hold exactly `len` octets.
    pub(crate) fn exact(msg_type: u8, body: Bytes, len: usize) -> Result<Self, DecodeError> {
        Reader::new(msg_type, body, len, Some(len))
    }

    fn short(&self) -> DecodeError {
        DecodeError::BodyTooShort {
            msg_type: self.msg_type,
            len: self.len,
            min: self.min,
        }
    }

    /// Takes `n` octets.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.body.len() < n {
            return Err(self.short());
        }
        Ok(self.body.split_to(n))
    }

    /// Takes one octet.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let octet = self.take(1)?;
        Ok(octet[0])
    }

    /// Takes a big-endian two-octet integer.
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let octets = self.take(2)?;
        Ok(u16::from_be_bytes([octets[0], octets[1]]))
    }

    /// Octets not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.body.len()
    }

    /// Takes everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
    }

    /// Takes everything left as a UTF-8 string; `field` names it in the error.
    pub(crate) fn rest_utf8(&mut self, field: &'static str) -> Result<ByteString, DecodeError> {
        let msg_type = self.msg_type;
        ByteString::try_from(self.rest()).map_err(|_| DecodeError::InvalidUtf8 { msg_type, field })
    }
}

/// Field names for [`DecodeError::InvalidUtf8`], with the section defining each.
pub(crate) mod field {
    /// §5.3.1.
    pub(crate) const CLIENT_ID: &str = "ClientId (§5.3.1)";
    /// §5.3.12.
    pub(crate) const TOPIC_NAME: &str = "TopicName (§5.3.12)";
    /// §5.3.14.
    pub(crate) const WILL_TOPIC: &str = "WillTopic (§5.3.14)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_is_used_up_to_255_octets_in_total() {
        assert_eq!(frame_len(0), Ok(2));
        assert_eq!(frame_len(253), Ok(255));
        assert_eq!(frame_len(254), Ok(258));
        assert_eq!(frame_len(MAX_LEN - 4), Ok(MAX_LEN));
        assert_eq!(
            frame_len(MAX_LEN - 3),
            Err(EncodeError::TooLong(MAX_LEN + 1))
        );
    }

    #[test]
    fn header_forms_are_written_as_the_spec_shows() {
        assert_eq!(header(2, 0x17), ([0x02, 0x17, 0, 0], 2));
        assert_eq!(header(255, 0x0C), ([0xFF, 0x0C, 0, 0], 2));
        assert_eq!(header(258, 0x0C), ([0x01, 0x01, 0x02, 0x0C], 4));
        assert_eq!(header(0xFFFF, 0x0C), ([0x01, 0xFF, 0xFF, 0x0C], 4));
    }

    #[test]
    fn reader_never_reads_past_its_body() {
        let mut reader = Reader::new(0x0C, Bytes::from_static(&[1, 2, 3]), 0, None).unwrap();
        assert_eq!(reader.u16(), Ok(0x0102));
        assert!(reader.u16().is_err());
        assert_eq!(reader.u8(), Ok(3));
        assert!(reader.u8().is_err());
        assert_eq!(reader.remaining(), 0);
    }
}
