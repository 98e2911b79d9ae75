//! The Code field (RFC 7252 §3, §12.1): a 3-bit class and a 5-bit detail, written `c.dd`.

use std::fmt;

/// A CoAP Code: class (0 request, 2 success, 4 client error, 5 server error) and detail.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(u8);

impl Code {
    /// 0.00: the Empty message (RFC 7252 §4.1).
    pub const EMPTY: Code = Code::new(0, 0);

    /// 0.01 GET (RFC 7252 §5.8.1).
    pub const GET: Code = Code::new(0, 1);
    /// 0.02 POST (RFC 7252 §5.8.2).
    pub const POST: Code = Code::new(0, 2);
    /// 0.03 PUT (RFC 7252 §5.8.3).
    pub const PUT: Code = Code::new(0, 3);
    /// 0.04 DELETE (RFC 7252 §5.8.4).
    pub const DELETE: Code = Code::new(0, 4);
    /// 0.05 FETCH (RFC 8132 §2).
    pub const FETCH: Code = Code::new(0, 5);
    /// 0.06 PATCH (RFC 8132 §3).
    pub const PATCH: Code = Code::new(0, 6);
    /// 0.07 iPATCH (RFC 8132 §3).
    pub const IPATCH: Code = Code::new(0, 7);

    /// 2.01 Created (RFC 7252 §5.9.1.1).
    pub const CREATED: Code = Code::new(2, 1);
    /// 2.02 Deleted (RFC 7252 §5.9.1.2).
    pub const DELETED: Code = Code::new(2, 2);
    /// 2.03 Valid (RFC 7252 §5.9.1.3).
    pub const VALID: Code = Code::new(2, 3);
    /// 2.04 Changed (RFC 7252 §5.9.1.4).
    pub const CHANGED: Code = Code::new(2, 4);
    /// 2.05 Content (RFC 7252 §5.9.1.5).
    pub const CONTENT: Code = Code::new(2, 5);
    /// 2.31 Continue (RFC 7959 §2.9.1).
    pub const CONTINUE: Code = Code::new(2, 31);

    /// 4.00 Bad Request (RFC 7252 §5.9.2.1).
    pub const BAD_REQUEST: Code = Code::new(4, 0);
    /// 4.01 Unauthorized (RFC 7252 §5.9.2.2).
    pub const UNAUTHORIZED: Code = Code::new(4, 1);
    /// 4.02 Bad Option (RFC 7252 §5.9.2.3).
    pub const BAD_OPTION: Code = Code::new(4, 2);
    /// 4.03 Forbidden (RFC 7252 §5.9.2.4).
    pub const FORBIDDEN: Code = Code::new(4, 3);
    /// 4.04 Not Found (RFC 7252 §5.9.2.5).
    pub const NOT_FOUND: Code = Code::new(4, 4);
    /// 4.05 Method Not Allowed (RFC 7252 §5.9.2.6).
    pub const METHOD_NOT_ALLOWED: Code = Code::new(4, 5);
    /// 4.06 Not Acceptable (RFC 7252 §5.9.2.7).
    pub const NOT_ACCEPTABLE: Code = Code::new(4, 6);
    /// 4.08 Request Entity Incomplete (RFC 7959 §2.9.2).
    pub const REQUEST_ENTITY_INCOMPLETE: Code = Code::new(4, 8);
    /// 4.09 Conflict (RFC 8132 §3.4).
    pub const CONFLICT: Code = Code::new(4, 9);
    /// 4.12 Precondition Failed (RFC 7252 §5.9.2.8).
    pub const PRECONDITION_FAILED: Code = Code::new(4, 12);
    /// 4.13 Request Entity Too Large (RFC 7252 §5.9.2.9, RFC 7959 §2.9.3).
    pub const REQUEST_ENTITY_TOO_LARGE: Code = Code::new(4, 13);
    /// 4.15 Unsupported Content-Format (RFC 7252 §5.9.2.10).
    pub const UNSUPPORTED_CONTENT_FORMAT: Code = Code::new(4, 15);
    /// 4.22 Unprocessable Entity (RFC 8132 §3.4).
    pub const UNPROCESSABLE_ENTITY: Code = Code::new(4, 22);

    /// 5.00 Internal Server Error (RFC 7252 §5.9.3.1).
    pub const INTERNAL_SERVER_ERROR: Code = Code::new(5, 0);
    /// 5.01 Not Implemented (RFC 7252 §5.9.3.2).
    pub const NOT_IMPLEMENTED: Code = Code::new(5, 1);
    /// 5.02 Bad Gateway (RFC 7252 §5.9.3.3).
    pub const BAD_GATEWAY: Code = Code::new(5, 2);
    /// 5.03 Service Unavailable (RFC 7252 §5.9.3.4).
    pub const SERVICE_UNAVAILABLE: Code = Code::new(5, 3);
    /// 5.04 Gateway Timeout (RFC 7252 §5.9.3.5).
    pub const GATEWAY_TIMEOUT: Code = Code::new(5, 4);
    /// 5.05 Proxying Not Supported (RFC 7252 §5.9.3.6).
    pub const PROXYING_NOT_SUPPORTED: Code = Code::new(5, 5);

    /// The code `class.detail`; `class` keeps its low 3 bits and `detail` its low 5.
    pub const fn new(class: u8, detail: u8) -> Code {
        Code(((class & 0x07) << 5) | (detail & 0x1F))
    }

    /// The code carried by the octet `byte`.
    pub const fn from_byte(byte: u8) -> Code {
        Code(byte)
    }

    /// The octet on the wire.
    pub const fn to_byte(self) -> u8 {
        self.0
    }

    /// The class (the digit before the dot).
    pub const fn class(self) -> u8 {
        self.0 >> 5
    }

    /// The detail (the two digits after the dot).
    pub const fn detail(self) -> u8 {
        self.0 & 0x1F
    }

    /// 0.00, the Empty message (RFC 7252 §4.1).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// A request method: class 0 with a non-zero detail (RFC 7252 §5.8).
    pub const fn is_request(self) -> bool {
        self.class() == 0 && self.detail() != 0
    }

    /// A response: class 2, 4 or 5 (RFC 7252 §5.9).
    pub const fn is_response(self) -> bool {
        matches!(self.class(), 2 | 4 | 5)
    }

    /// A success response, class 2 (RFC 7252 §5.9.1).
    pub const fn is_success(self) -> bool {
        self.class() == 2
    }

    /// A client or server error response, class 4 or 5 (RFC 7252 §5.9.2, §5.9.3).
    pub const fn is_error(self) -> bool {
        matches!(self.class(), 4 | 5)
    }

    /// Class 1, 6 or 7, which RFC 7252 §12.1 reserves.
    pub const fn is_reserved_class(self) -> bool {
        matches!(self.class(), 1 | 6 | 7)
    }

    /// A response code's registered name in snake case, as EMQX spells it in its JSON
    /// (`content`, `not_found`, `bad_request`); `None` for codes without one.
    pub const fn name(self) -> Option<&'static str> {
        Some(match (self.class(), self.detail()) {
            (2, 1) => "created",
            (2, 2) => "deleted",
            (2, 3) => "valid",
            (2, 4) => "changed",
            (2, 5) => "content",
            (2, 31) => "continue",
            (4, 0) => "bad_request",
            (4, 1) => "unauthorized",
            (4, 2) => "bad_option",
            (4, 3) => "forbidden",
            (4, 4) => "not_found",
            (4, 5) => "method_not_allowed",
            (4, 6) => "not_acceptable",
            (4, 8) => "request_entity_incomplete",
            (4, 9) => "conflict",
            (4, 12) => "precondition_failed",
            (4, 13) => "request_entity_too_large",
            (4, 15) => "unsupported_content_format",
            (4, 22) => "unprocessable_entity",
            (5, 0) => "internal_server_error",
            (5, 1) => "not_implemented",
            (5, 2) => "bad_gateway",
            (5, 3) => "service_unavailable",
            (5, 4) => "gateway_timeout",
            (5, 5) => "proxying_not_supported",
            _ => return None,
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_and_detail_pack_into_one_octet() {
        assert_eq!(Code::GET.to_byte(), 0x01);
        assert_eq!(Code::CONTENT.to_byte(), 0x45);
        assert_eq!(Code::CONTINUE.to_byte(), 0x5F);
        assert_eq!(Code::REQUEST_ENTITY_INCOMPLETE.to_byte(), 0x88);
        assert_eq!(Code::REQUEST_ENTITY_TOO_LARGE.to_byte(), 0x8D);
        assert_eq!(Code::PROXYING_NOT_SUPPORTED.to_byte(), 0xA5);
        assert_eq!(Code::from_byte(0x84), Code::NOT_FOUND);
    }

    #[test]
    fn response_codes_have_their_snake_case_names() {
        assert_eq!(Code::CONTENT.name(), Some("content"));
        assert_eq!(Code::NOT_FOUND.name(), Some("not_found"));
        assert_eq!(Code::new(4, 30).name(), None);
        assert_eq!(Code::GET.name(), None);
    }

    #[test]
    fn displays_as_class_dot_detail() {
        assert_eq!(Code::CONTENT.to_string(), "2.05");
        assert_eq!(Code::CONTINUE.to_string(), "2.31");
        assert_eq!(Code::EMPTY.to_string(), "0.00");
        assert_eq!(format!("{:?}", Code::BAD_OPTION), "Code(4.02)");
    }

    #[test]
    fn classifies_requests_responses_and_reserved_classes() {
        assert!(Code::EMPTY.is_empty() && !Code::EMPTY.is_request());
        assert!(Code::IPATCH.is_request());
        assert!(Code::CREATED.is_response() && Code::CREATED.is_success());
        assert!(Code::GATEWAY_TIMEOUT.is_error());
        assert!(Code::new(1, 0).is_reserved_class());
        assert!(Code::new(7, 31).is_reserved_class());
        assert!(!Code::new(7, 31).is_response());
    }
}
