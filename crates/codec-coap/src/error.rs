//! Decode and encode errors, each citing the RFC 7252 section it enforces.
//!
//! A message format error in a Confirmable message is answered with a Reset that echoes its
//! Message ID (RFC 7252 §4.2); in a Non-confirmable message it may be answered the same way
//! or ignored (§4.3); in an Acknowledgement or Reset it is silently ignored (§4.2). A
//! datagram shorter than the header, or with an unknown version (§3), is silently ignored.
//! [`DecodeError`] therefore keeps what was parsed of the header, and
//! [`DecodeError::reset_reply`] builds the Reset when one is due.

use crate::message::Message;
use crate::msg_type::MessageType;
use crate::token::Token;

/// What is wrong with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// Fewer than the 4 octets of the fixed header.
    #[error("datagram of {0} octets is shorter than the 4-octet header [RFC 7252 §3]")]
    TruncatedHeader(usize),
    /// Version other than 1; such messages are silently ignored.
    #[error("version {0} is not 1 [RFC 7252 §3: unknown versions are silently ignored]")]
    UnsupportedVersion(u8),
    /// Token Length 9-15, which are reserved.
    #[error("token length {0} is reserved (9-15) [RFC 7252 §3: message format error]")]
    ReservedTokenLength(u8),
    /// The datagram ends inside the Token.
    #[error("token of {declared} octets but only {available} follow the header [RFC 7252 §3]")]
    TruncatedToken {
        /// The Token Length field.
        declared: u8,
        /// Octets after the header.
        available: usize,
    },
    /// An option header with delta 15 that is not the payload marker 0xFF.
    #[error("option delta nibble 15 is reserved [RFC 7252 §3.1: message format error]")]
    ReservedOptionDelta,
    /// An option header with length nibble 15.
    #[error("option length nibble 15 is reserved [RFC 7252 §3.1: message format error]")]
    ReservedOptionLength,
    /// The datagram ends inside an option's extended delta, extended length or value.
    #[error("option {number} runs past the end of the datagram [RFC 7252 §3.1]")]
    TruncatedOption {
        /// The option number reached so far (previous number plus the delta read).
        number: u32,
    },
    /// The option numbers add up past 65535, the largest option number.
    #[error("option number {0} exceeds 65535 [RFC 7252 §3.1, §12.2]")]
    OptionNumberOverflow(u32),
    /// A payload marker with nothing after it.
    #[error(
        "payload marker followed by a zero-length payload [RFC 7252 §3: message format error]"
    )]
    EmptyPayload,
    /// A 0.00 message with a token, options or a payload.
    #[error("empty message (0.00) with octets after the Message ID [RFC 7252 §4.1: message format error]")]
    NonEmptyEmptyMessage,
}

/// The header fields parsed before a format error, enough to reject the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialHeader {
    /// The message type.
    pub message_type: MessageType,
    /// The Message ID.
    pub message_id: u16,
    /// The Token, when the error came after it.
    pub token: Option<Token>,
}

/// Why a datagram is not a well-formed CoAP message, with the header parsed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    header: Option<PartialHeader>,
}

impl DecodeError {
    /// An error seen before any header field could be trusted.
    pub(crate) fn bare(kind: DecodeErrorKind) -> DecodeError {
        DecodeError { kind, header: None }
    }

    /// An error seen after the header was parsed.
    pub(crate) fn with_header(kind: DecodeErrorKind, header: PartialHeader) -> DecodeError {
        DecodeError {
            kind,
            header: Some(header),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The header fields parsed before the error (`None` for a truncated header or an
    /// unknown version).
    pub fn header(&self) -> Option<PartialHeader> {
        self.header
    }

    /// The Message ID, if the header was parsed.
    pub fn message_id(&self) -> Option<u16> {
        self.header.map(|h| h.message_id)
    }

    /// The message type, if the header was parsed.
    pub fn message_type(&self) -> Option<MessageType> {
        self.header.map(|h| h.message_type)
    }

    /// The Token, if the error came after it.
    pub fn token(&self) -> Option<Token> {
        self.header.and_then(|h| h.token)
    }

    /// Whether the rejected message was Confirmable.
    pub fn is_confirmable(&self) -> bool {
        self.message_type() == Some(MessageType::Confirmable)
    }

    /// The Reset that rejects the message: `Some` for a Confirmable message with a format
    /// error (RFC 7252 §4.2 "MUST"), `None` otherwise: a truncated header or unknown
    /// version is silently ignored (§3), and so is a rejected ACK or RST (§4.2). A
    /// Non-confirmable message is ignored too (§4.3 "MAY" reject; ignoring keeps replies
    /// to unproven peers from being used for reflection).
    pub fn reset_reply(&self) -> Option<Message> {
        match self.header {
            Some(PartialHeader {
                message_type: MessageType::Confirmable,
                message_id,
                ..
            }) => Some(Message::reset(message_id)),
            _ => None,
        }
    }
}

/// Why a message cannot be encoded. Nothing is written on error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A 0.00 message with a token, options or payload.
    #[error("empty message (0.00) cannot carry a token, options or a payload [RFC 7252 §4.1]")]
    NonEmptyEmptyMessage,
    /// An option value longer than the 65804 octets the length field can express.
    #[error("option {number} value of {len} octets exceeds 65804 [RFC 7252 §3.1]")]
    OptionTooLong {
        /// The option number.
        number: u16,
        /// The value's length.
        len: usize,
    },
}
