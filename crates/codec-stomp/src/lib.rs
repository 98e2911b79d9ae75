//! Sans-IO STOMP 1.0 / 1.1 / 1.2 codec: bytes in, [`Item`]s out, and [`Frame`]s back to
//! bytes.
//!
//! # Decoding
//!
//! [`Decoder::decode`] takes the connection's read buffer and returns one [`Item`] at a
//! time: incomplete input is `Ok(None)` and consumes nothing; a complete frame is split off
//! the buffer and its header names, values and body are zero-copy slices of it (a header
//! field is copied only when it contains an escape sequence).
//!
//! * Grammar (STOMP 1.2, "STOMP Frames", "Augmented BNF"): command line, `name:value`
//!   header lines split at the **first** colon, a blank line, the body, NUL. With a
//!   `content-length` header the body is exactly that many octets (NULs included) and must
//!   be followed by NUL; without one it runs to the first NUL.
//! * Lines end in LF or CR LF in every version (1.2's `EOL = [CR] LF`; the decoder reads
//!   CONNECT before a version is negotiated). A CR anywhere else in a command or header line
//!   is an error: the 1.2 grammar excludes it, and a literal CR could not be re-encoded
//!   unambiguously. Unlike EMQX, CR LF is not a parse error.
//! * Each EOL between frames (also those trailing a frame) is one [`Item::HeartBeat`]
//!   (STOMP 1.2, "Heart-beating"); they are not coalesced.
//! * Header values are unescaped per [`Version`] (1.2: `\r \n \c \\`; 1.1: `\n \c \\`;
//!   1.0: none) except in CONNECT, STOMP and CONNECTED frames, which are never escaped
//!   ("Value Encoding"). Any other escape is [`DecodeError::BadEscape`].
//! * [`Limits`] (EMQX `gateway.stomp.frame.*`) are enforced as early as the octets allow:
//!   an over-limit `content-length` when its header line completes, a NUL-less body once
//!   more than the limit is buffered, a header line once it is longer than any header
//!   within the limit could be, an extra header as soon as its first octet arrives. EMQX
//!   checks only once a frame is complete.
//! * Which commands may carry a body and which headers each command requires ("Frames and
//!   Headers") are the gateway channel's business, not the codec's.
//!
//! # Encoding
//!
//! [`encode`] writes a frame straight into a `BytesMut`, escaping per version (never for
//! CONNECT / STOMP / CONNECTED) and recomputing `content-length`; [`encode_heartbeat`]
//! writes a single LF.
//!
//! Octets a version cannot represent in a header are replaced on encode so a value can
//! never inject a header or end the frame:
//!
//! | octet | 1.2 | 1.1 | 1.0 and CONNECT/STOMP/CONNECTED |
//! |---|---|---|---|
//! | `\` | `\\` | `\\` | literal |
//! | LF | `\n` | `\n` | space |
//! | `:` | `\c` | `\c` | literal in values; `_` in names |
//! | CR | `\r` | space | space |
//!
//! STOMP has one frame grammar for every command, so the codec is one decoder
//! (`decode.rs`) and one encoder (`encode.rs`) rather than a file per frame type.

mod command;
mod decode;
mod encode;
pub mod error;
mod escape;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod version;

pub use command::Command;
pub use decode::Decoder;
pub use encode::{encode, encode_heartbeat};
pub use error::DecodeError;
pub use frame::{Frame, Item};
pub use limits::Limits;
pub use version::Version;

#[cfg(test)]
mod tests;
