//! Decode errors. Every variant cites the STOMP 1.2 section it enforces and knows the reason
//! term EMQX puts in its `ERROR` frame body, `Frame error: <reason>`
//! ([`DecodeError::emqx_reason`]).
//!
//! Every decode error is fatal: the spec has the server send an `ERROR` frame and close the
//! connection ("Size Limits"; "Value Encoding" for escapes).

/// Why bytes from the peer are not a STOMP frame stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The command line is not one of the fifteen commands (case-sensitive), or grew longer
    /// than the longest command without ending.
    #[error("unknown command {0:?} [STOMP 1.2, Augmented BNF: command = client-command | server-command]")]
    UnknownCommand(String),
    /// A header line has no `:` separating name and value.
    #[error("header line without a colon [STOMP 1.2, STOMP Frames; Augmented BNF: header = header-name \":\" header-value]")]
    MissingColon,
    /// A header line starts with `:`.
    #[error("empty header name [STOMP 1.2, Augmented BNF: header-name = 1*<any OCTET except CR or LF or \":\">]")]
    EmptyHeaderName,
    /// A carriage return in a header line that is not the CR of a CR LF end-of-line.
    #[error("carriage return outside an end-of-line [STOMP 1.2, Augmented BNF: EOL = [CR] LF, header octets exclude CR; Value Encoding]")]
    BareCarriageReturn,
    /// A backslash not followed by an escape defined for the version (`\t`, a trailing `\`,
    /// `\r` in 1.1).
    #[error("undefined escape sequence {0:?} [STOMP 1.2, Value Encoding: undefined escape sequences MUST be treated as a fatal protocol error]")]
    BadEscape(String),
    /// A header name or value is not UTF-8.
    #[error("header is not valid UTF-8 [STOMP 1.2, Value Encoding: commands and header names and values MUST be encoded using UTF-8]")]
    InvalidUtf8,
    /// The `content-length` value is not a decimal octet count.
    #[error(
        "content-length {0:?} is not a decimal octet count [STOMP 1.2, Header content-length]"
    )]
    BadContentLength(String),
    /// The octet after the `content-length` body octets is not NUL.
    #[error("no NUL after the content-length body octets [STOMP 1.2, STOMP Frames; Header content-length]")]
    MissingNul,
    /// More headers than [`Limits::max_headers`](crate::Limits::max_headers).
    #[error("more than {max} headers [STOMP 1.2, Size Limits]")]
    TooManyHeaders {
        /// The configured maximum.
        max: usize,
    },
    /// A header whose name plus value (unescaped) is longer than
    /// [`Limits::max_headers_length`](crate::Limits::max_headers_length).
    #[error("header name plus value longer than {max} octets [STOMP 1.2, Size Limits]")]
    TooLongHeader {
        /// The configured maximum.
        max: usize,
    },
    /// A body longer than [`Limits::max_body_length`](crate::Limits::max_body_length).
    #[error("body longer than {max} octets [STOMP 1.2, Size Limits]")]
    TooLongBody {
        /// The configured maximum.
        max: usize,
    },
}

impl DecodeError {
    /// The reason term EMQX writes in the `ERROR` body `Frame error: <reason>`: its own
    /// `too_many_headers` / `too_long_header` / `too_long_body` for limit violations, a
    /// descriptive snake_case term for everything else.
    pub fn emqx_reason(&self) -> &'static str {
        match self {
            DecodeError::UnknownCommand(_) => "unknown_command",
            DecodeError::MissingColon => "invalid_header",
            DecodeError::EmptyHeaderName => "empty_header_name",
            DecodeError::BareCarriageReturn => "unexpected_carriage_return",
            DecodeError::BadEscape(_) => "invalid_escape_sequence",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::BadContentLength(_) => "invalid_content_length",
            DecodeError::MissingNul => "missing_null_terminator",
            DecodeError::TooManyHeaders { .. } => "too_many_headers",
            DecodeError::TooLongHeader { .. } => "too_long_header",
            DecodeError::TooLongBody { .. } => "too_long_body",
        }
    }
}
