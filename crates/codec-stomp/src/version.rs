//! Protocol versions and the header escaping each one uses.

use crate::Command;

/// The STOMP version a connection speaks (negotiated by CONNECT `accept-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// STOMP 1.0: headers are never escaped.
    V1_0,
    /// STOMP 1.1: `\n`, `\c`, `\\` escapes.
    V1_1,
    /// STOMP 1.2: `\r`, `\n`, `\c`, `\\` escapes.
    V1_2,
}

impl Version {
    /// The version as written in `accept-version` / `version` headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }
}

/// How the headers of one frame are escaped (STOMP 1.2, "Value Encoding").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// STOMP 1.0, and CONNECT / STOMP / CONNECTED in every version: octets are literal.
    None,
    /// STOMP 1.1: `\n`, `\c`, `\\`.
    V1_1,
    /// STOMP 1.2: `\r`, `\n`, `\c`, `\\`.
    V1_2,
}

impl Escaping {
    /// The escaping of a `command` frame on a `version` connection.
    pub(crate) const fn of(version: Version, command: Command) -> Escaping {
        if command.is_connect_like() {
            return Escaping::None;
        }
        match version {
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V1_1,
            Version::V1_2 => Escaping::V1_2,
        }
    }
}
