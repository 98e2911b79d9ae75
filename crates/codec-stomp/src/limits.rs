//! Per-frame size limits (STOMP 1.2, "Size Limits"; EMQX `gateway.stomp.frame.*`).

/// Limits on incoming frames. Defaults are EMQX's `gateway.stomp.frame.*` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most headers in one frame; default 10 (`frame.max_headers`).
    pub max_headers: usize,
    /// Most octets in one header's name plus value, after unescaping; default 1024
    /// (`frame.max_headers_length`).
    pub max_headers_length: usize,
    /// Most body octets; default 65536 (`frame.max_body_length`).
    pub max_body_length: usize,
}

impl Limits {
    /// No limits at all (for re-decoding trusted output, tests, fuzzing).
    pub const UNLIMITED: Limits = Limits {
        max_headers: usize::MAX,
        max_headers_length: usize::MAX,
        max_body_length: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 10,
            max_headers_length: 1024,
            max_body_length: 65536,
        }
    }
}
