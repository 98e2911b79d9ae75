//! Sans-IO CoAP: the RFC 7252 message codec and message layer, block-wise transfer
//! (RFC 7959), Observe sequencing (RFC 7641) and the CoRE Link Format (RFC 6690).
//!
//! Nothing here touches a socket or a clock. [`decode`] takes one datagram and returns
//! the [`Message`] it carries or a [`DecodeError`] that cites RFC 7252 and keeps the
//! header fields parsed so far, so a server can reject a Confirmable message with a Reset
//! ([`DecodeError::reset_reply`], RFC 7252 §4.2). [`encode`] appends a message in its one
//! canonical form: decode → encode → decode round-trips byte for byte.
//!
//! [`Endpoint`] is the per-peer message layer: deduplication of incoming CON/NON,
//! retransmission of outgoing CON with exponential back-off, ping handling. Its caller
//! passes `now` in milliseconds and a seed for the random parts.
//!
//! # Decisions
//!
//! * Retransmission follows RFC 7252 §4.2 (first timeout random in [2 s, 3 s], doubled
//!   each time), not EMQX 5.x, whose retry interval drops to 0 after the first timeout.
//! * A format error in a NON is ignored rather than answered with a Reset (§4.3 "MAY"):
//!   no reply to a peer that has not shown it can parse one.
//! * Option values are kept as received; typed accessors read them. Unknown options stay
//!   in the message; [`Message::unknown_critical`] finds the one that forces 4.02.
//!
//! One file per concern: `wire.rs` (format), `message.rs`, `option.rs`, `code.rs`,
//! `block.rs`, `observe.rs`, `params.rs`, `dedup.rs`, `endpoint.rs`, `link_format.rs`.

pub mod block;
pub mod code;
pub mod content_format;
pub mod dedup;
pub mod endpoint;
pub mod error;
pub mod link_format;
pub mod message;
pub mod msg_type;
pub mod observe;
pub mod option;
pub mod params;
pub mod token;
mod wire;

pub use block::{block2_slice, Block, Block1Assembler, Block1Progress, BlockError};
pub use code::Code;
pub use endpoint::{Endpoint, Incoming, SendError, TimeoutEvent};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, PartialHeader};
pub use message::Message;
pub use msg_type::MessageType;
pub use option::{CoapOption, Options};
pub use params::Params;
pub use token::Token;
pub use wire::{decode, encode, encoded_len, HEADER_LEN, PAYLOAD_MARKER, VERSION};

/// Decodes a message from a borrowed datagram (copies it once; prefer [`decode`]).
pub fn decode_slice(datagram: &[u8]) -> Result<Message, DecodeError> {
    decode(bytes::Bytes::copy_from_slice(datagram))
}
