//! Frames and the items a decoder yields.

use bytes::Bytes;
use bytestring::ByteString;

use crate::Command;

/// One STOMP frame: command, headers in wire order (unescaped), body.
///
/// Every command shares the one frame grammar of STOMP 1.2 "STOMP Frames"; which headers a
/// command requires ("Frames and Headers") is checked by the gateway channel, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command line.
    pub command: Command,
    /// Headers in the order received or to send; names may repeat.
    pub headers: Vec<(ByteString, ByteString)>,
    /// The body (may contain NUL octets when framed by `content-length`).
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Appends a header.
    pub fn with_header(
        mut self,
        name: impl Into<ByteString>,
        value: impl Into<ByteString>,
    ) -> Frame {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// The value of the first header called `name` (STOMP 1.2, "Repeated Header Entries":
    /// only the first entry is used).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| &**value)
    }
}

/// What one [`Decoder::decode`](crate::Decoder::decode) call yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame.
    Frame(Frame),
    /// One EOL (`\n` or `\r\n`) between frames: a heart-beat (STOMP 1.2, "Heart-beating").
    HeartBeat,
}
