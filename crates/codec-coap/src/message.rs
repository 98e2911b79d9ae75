//! [`Message`]: one CoAP message (RFC 7252 §3) and accessors for the options a server reads.

use bytes::Bytes;

use crate::block::{Block, BlockError};
use crate::code::Code;
use crate::msg_type::MessageType;
use crate::option::{self, Options};
use crate::token::Token;

/// One CoAP message. Options are always in number order, and the Token is at most 8
/// octets, so every `Message` whose [`crate::encode`] succeeds decodes back to itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// CON, NON, ACK or RST.
    pub message_type: MessageType,
    /// Method, response code, or 0.00 for an Empty message.
    pub code: Code,
    /// The Message ID, for deduplication and matching ACK/RST (RFC 7252 §4.4).
    pub message_id: u16,
    /// The Token, matching responses to requests (RFC 7252 §5.3.1).
    pub token: Token,
    /// The options, in number order.
    pub options: Options,
    /// The payload; empty means no payload marker on the wire.
    pub payload: Bytes,
}

impl Message {
    /// A message with no token, options or payload.
    pub fn new(message_type: MessageType, code: Code, message_id: u16) -> Message {
        Message {
            message_type,
            code,
            message_id,
            token: Token::EMPTY,
            options: Options::new(),
            payload: Bytes::new(),
        }
    }

    /// The Reset that rejects message `message_id` (RFC 7252 §4.2, §4.3).
    pub fn reset(message_id: u16) -> Message {
        Message::new(MessageType::Reset, Code::EMPTY, message_id)
    }

    /// An Empty ACK of message `message_id`, e.g. before a separate response (RFC 7252 §5.2.2).
    pub fn empty_ack(message_id: u16) -> Message {
        Message::new(MessageType::Acknowledgement, Code::EMPTY, message_id)
    }

    /// An Empty CON, the "CoAP ping" (RFC 7252 §4.3).
    pub fn ping(message_id: u16) -> Message {
        Message::new(MessageType::Confirmable, Code::EMPTY, message_id)
    }

    /// This message with `token`.
    pub fn with_token(mut self, token: Token) -> Message {
        self.token = token;
        self
    }

    /// This message with `payload`.
    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Message {
        self.payload = payload.into();
        self
    }

    /// Whether this is an Empty message (code 0.00, RFC 7252 §4.1).
    pub fn is_empty(&self) -> bool {
        self.code.is_empty()
    }

    /// Whether this is a CoAP ping: an Empty Confirmable message (RFC 7252 §4.3).
    pub fn is_ping(&self) -> bool {
        self.message_type == MessageType::Confirmable && self.is_empty()
    }

    /// The Reset that answers a ping (RFC 7252 §4.3), `None` if this is not one.
    pub fn ping_reply(&self) -> Option<Message> {
        self.is_ping().then(|| Message::reset(self.message_id))
    }

    /// A response with `code` to this request, echoing its Token (RFC 7252 §5.3.2): a
    /// piggy-backed ACK with the same Message ID for a CON (§5.2.1), otherwise a NON
    /// whose Message ID (0 here) the sender must allocate (§5.2.3).
    pub fn response(&self, code: Code) -> Message {
        let (message_type, message_id) = match self.message_type {
            MessageType::Confirmable => (MessageType::Acknowledgement, self.message_id),
            _ => (MessageType::NonConfirmable, 0),
        };
        Message::new(message_type, code, message_id).with_token(self.token)
    }

    /// The Uri-Path segments, in order (RFC 7252 §5.10.1).
    pub fn uri_path_segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.options.get_all(option::URI_PATH).map(|v| &v[..])
    }

    /// The Uri-Path segments joined by `/` (no leading `/`; an empty first segment gives
    /// one), or `None` if a segment is not UTF-8.
    pub fn uri_path(&self) -> Option<String> {
        let mut path = String::new();
        for (i, segment) in self.uri_path_segments().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(std::str::from_utf8(segment).ok()?);
        }
        Some(path)
    }

    /// Replaces the Uri-Path with the `/`-separated segments of `path` (one leading `/`
    /// is ignored; RFC 7252 §6.4 step 8).
    pub fn set_uri_path(&mut self, path: &str) {
        self.options.remove(option::URI_PATH);
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return;
        }
        for segment in path.split('/') {
            self.options
                .push(option::URI_PATH, Bytes::copy_from_slice(segment.as_bytes()));
        }
    }

    /// Replaces the Location-Path with `segments` (RFC 7252 §5.10.7): where a created
    /// resource (an LwM2M registration) lives.
    pub fn set_location_path(&mut self, segments: &[&str]) {
        self.options.remove(option::LOCATION_PATH);
        for segment in segments {
            self.options.push(
                option::LOCATION_PATH,
                Bytes::copy_from_slice(segment.as_bytes()),
            );
        }
    }

    /// The Uri-Query arguments split on their first `=` (a missing `=` gives an empty
    /// value), or `None` if one is not UTF-8.
    pub fn uri_queries(&self) -> Option<Vec<(&str, &str)>> {
        self.options
            .get_all(option::URI_QUERY)
            .map(|v| {
                let arg = std::str::from_utf8(v).ok()?;
                Some(arg.split_once('=').unwrap_or((arg, "")))
            })
            .collect()
    }

    /// The value of the first Uri-Query argument named `key`.
    pub fn uri_query(&self, key: &str) -> Option<&str> {
        self.options.get_all(option::URI_QUERY).find_map(|v| {
            let arg = std::str::from_utf8(v).ok()?;
            match arg.split_once('=') {
                Some((k, value)) if k == key => Some(value),
                None if arg == key => Some(""),
                _ => None,
            }
        })
    }

    /// Adds a Uri-Query argument `key=value`.
    pub fn push_uri_query(&mut self, key: &str, value: &str) {
        self.options
            .push(option::URI_QUERY, Bytes::from(format!("{key}={value}")));
    }

    /// The Content-Format, if present and at most 2 octets (RFC 7252 §5.10.3).
    pub fn content_format(&self) -> Option<u16> {
        self.short_uint(option::CONTENT_FORMAT)
    }

    /// The Accept option, if present and at most 2 octets (RFC 7252 §5.10.4).
    pub fn accept(&self) -> Option<u16> {
        self.short_uint(option::ACCEPT)
    }

    /// The Observe value, if present and at most 3 octets (RFC 7641 §2).
    pub fn observe(&self) -> Option<u32> {
        let value = self.options.get(option::OBSERVE)?;
        if value.len() > 3 {
            return None;
        }
        option::decode_uint(value)
    }

    /// The Block1 option, if present (RFC 7959 §2.1).
    pub fn block1(&self) -> Option<Result<Block, BlockError>> {
        self.options.get(option::BLOCK1).map(|v| Block::decode(v))
    }

    /// The Block2 option, if present (RFC 7959 §2.1).
    pub fn block2(&self) -> Option<Result<Block, BlockError>> {
        self.options.get(option::BLOCK2).map(|v| Block::decode(v))
    }

    /// The first option that RFC 7252 §5.4.1 requires rejecting: a critical option whose
    /// number is not in `known`, or a critical option that is known but occurs more often
    /// than it may (§5.4.5) or has a value length outside its definition (§5.4.3). A
    /// server answers a CON request carrying one with 4.02 Bad Option; a NON request or a
    /// response carrying one is rejected.
    pub fn unknown_critical(&self, known: &[u16]) -> Option<u16> {
        let mut previous: Option<u16> = None;
        for opt in &self.options {
            let number = opt.number;
            let repeated = previous == Some(number);
            previous = Some(number);
            if !option::is_critical(number) {
                continue;
            }
            if !known.contains(&number) {
                return Some(number);
            }
            if repeated && !option::is_repeatable(number) {
                return Some(number);
            }
            if let Some((min, max)) = option::length_range(number) {
                if opt.value.len() < min || opt.value.len() > max {
                    return Some(number);
                }
            }
        }
        None
    }

    /// A `uint` option that fits 2 octets.
    fn short_uint(&self, number: u16) -> Option<u16> {
        let value = self.options.get(number)?;
        if value.len() > 2 {
            return None;
        }
        option::decode_uint(value).and_then(|v| u16::try_from(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::option::*;

    fn get(path: &str) -> Message {
        let mut msg = Message::new(MessageType::Confirmable, Code::GET, 7);
        msg.set_uri_path(path);
        msg
    }

    #[test]
    fn uri_path_joins_segments_and_keeps_an_empty_first_one() {
        assert_eq!(get("/ps/a/b").uri_path().as_deref(), Some("ps/a/b"));
        assert_eq!(get("//a").uri_path().as_deref(), Some("/a"));
        assert_eq!(get("/").uri_path().as_deref(), Some(""));
        let mut bad = get("x");
        bad.options.push(URI_PATH, &[0xFF][..]);
        assert_eq!(bad.uri_path(), None);
    }

    #[test]
    fn uri_queries_split_on_the_first_equals_sign() {
        let mut msg = get("mqtt/connection");
        msg.push_uri_query("clientid", "c1");
        msg.options.push(URI_QUERY, &b"password=a=b"[..]);
        msg.options.push(URI_QUERY, &b"flag"[..]);
        assert_eq!(
            msg.uri_queries(),
            Some(vec![("clientid", "c1"), ("password", "a=b"), ("flag", "")])
        );
        assert_eq!(msg.uri_query("password"), Some("a=b"));
        assert_eq!(msg.uri_query("flag"), Some(""));
        assert_eq!(msg.uri_query("token"), None);
    }

    #[test]
    fn unknown_critical_options_are_detected_and_elective_ones_ignored() {
        let mut msg = get("ps/t");
        assert_eq!(msg.unknown_critical(KNOWN), None);
        msg.options.push(2048, &b"x"[..]); // elective, unknown: ignored (§5.4.1)
        assert_eq!(msg.unknown_critical(KNOWN), None);
        msg.options.push(2049, &b"x"[..]); // critical, unknown
        assert_eq!(msg.unknown_critical(KNOWN), Some(2049));
        assert_eq!(msg.unknown_critical(&[URI_PATH, 2049]), None);
    }

    #[test]
    fn a_repeated_or_misshaped_critical_option_counts_as_unrecognized() {
        let mut msg = get("a");
        msg.options.push(URI_HOST, &b"h1"[..]);
        assert_eq!(msg.unknown_critical(KNOWN), None);
        msg.options.push(URI_HOST, &b"h2"[..]);
        assert_eq!(msg.unknown_critical(KNOWN), Some(URI_HOST));

        let mut msg = get("a");
        msg.options.push(URI_HOST, Bytes::new()); // Uri-Host is 1-255 octets
        assert_eq!(msg.unknown_critical(KNOWN), Some(URI_HOST));

        let mut msg = get("a");
        msg.options.push(CONTENT_FORMAT, &[0][..]);
        msg.options.push(CONTENT_FORMAT, &[1][..]); // elective: ignored
        assert_eq!(msg.unknown_critical(KNOWN), None);
    }

    #[test]
    fn responses_echo_the_token_and_piggy_back_on_con() {
        let req = get("a").with_token(Token::from_u64(0xBEEF));
        let resp = req.response(Code::CONTENT);
        assert_eq!(resp.message_type, MessageType::Acknowledgement);
        assert_eq!((resp.message_id, resp.token), (7, req.token));
        let mut non = req.clone();
        non.message_type = MessageType::NonConfirmable;
        assert_eq!(
            non.response(Code::CONTENT).message_type,
            MessageType::NonConfirmable
        );
    }

    #[test]
    fn a_ping_is_answered_with_reset_and_nothing_else_is() {
        let reply = Message::ping(42).ping_reply();
        assert_eq!(reply, Some(Message::reset(42)));
        assert_eq!(get("a").ping_reply(), None);
        assert_eq!(Message::empty_ack(42).ping_reply(), None);
    }

    #[test]
    fn typed_option_accessors_reject_oversized_values() {
        let mut msg = get("a");
        msg.options.push_uint(CONTENT_FORMAT, 11542);
        msg.options.push_uint(OBSERVE, 0);
        assert_eq!(msg.content_format(), Some(11542));
        assert_eq!(msg.observe(), Some(0));
        assert_eq!(msg.accept(), None);
        msg.options.set(OBSERVE, &[1, 2, 3, 4][..]);
        assert_eq!(msg.observe(), None);
        msg.options.set_uint(CONTENT_FORMAT, 70000);
        assert_eq!(msg.content_format(), None);
    }
}
