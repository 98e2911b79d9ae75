//! What a CoAP request asks of the gateway (reference §5.3 "Resources"), read from its
//! method, Uri-Path, Uri-Query and Observe options. Pure: no session, no clock.

use junction_codec_coap::{Code, Message};

/// The query keys of EMQX's resources, with their short aliases (5.10).
const ALIASES: &[(&str, &str)] = &[
    ("c", "clientid"),
    ("t", "token"),
    ("u", "username"),
    ("p", "password"),
    ("q", "qos"),
    ("r", "retain"),
];

/// A request's query, `k=v` pairs borrowed from its options, with the aliases resolved
/// (the first of a repeated key wins).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Query<'a> {
    /// The query of `msg`.
    pub fn of(msg: &'a Message) -> Query<'a> {
        let pairs = msg
            .uri_queries()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let k = ALIASES
                    .iter()
                    .find(|(short, _)| *short == k)
                    .map_or(k, |(_, long)| long);
                (k, v)
            })
            .collect();
        Query { pairs }
    }

    /// The value of `key` (its long name).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `POST /mqtt/connection`: open a connection.
    Connect,
    /// `PUT /mqtt/connection`: a heartbeat.
    Heartbeat,
    /// `DELETE /mqtt/connection`: close the connection.
    Disconnect,
    /// `POST /ps/{topic}`: publish the payload.
    Publish(String),
    /// `GET /ps/{filter}` with Observe 0: subscribe.
    Observe(String),
    /// `GET /ps/{filter}` with Observe 1: unsubscribe.
    Unobserve(String),
    /// `GET /ps/{filter}` with a Block2 option and no Observe: a later block of the
    /// last notification (RFC 7959 §3.4).
    NextBlock(String),
    /// Refused, with the response code and diagnostic text.
    Refused(Code, &'static str),
}

impl Request {
    /// Read `msg` (a request).
    pub fn of(msg: &Message) -> Request {
        let segments: Vec<&[u8]> = msg.uri_path_segments().collect();
        let Ok(segments) = segments
            .iter()
            .map(|s| std::str::from_utf8(s))
            .collect::<Result<Vec<&str>, _>>()
        else {
            return Request::Refused(Code::BAD_REQUEST, "invalid topic");
        };
        match segments.as_slice() {
            ["mqtt", "connection"] => match msg.code {
                Code::POST => Request::Connect,
                Code::PUT => Request::Heartbeat,
                Code::DELETE => Request::Disconnect,
                _ => Request::Refused(Code::METHOD_NOT_ALLOWED, "method not allowed"),
            },
            ["ps", rest @ ..] => {
                // Segments joined by `/`: an empty first segment is a leading `/`.
                let topic = rest.join("/");
                if topic.is_empty() {
                    return Request::Refused(Code::BAD_REQUEST, "invalid topic");
                }
                match msg.code {
                    Code::POST => Request::Publish(topic),
                    Code::GET => match msg.observe() {
                        Some(0) if msg.token.is_empty() => {
                            Request::Refused(Code::BAD_REQUEST, "observe without token")
                        }
                        Some(0) => Request::Observe(topic),
                        Some(1) => Request::Unobserve(topic),
                        None if msg.block2().is_some() => Request::NextBlock(topic),
                        _ => Request::Refused(Code::BAD_REQUEST, "invalid observe value"),
                    },
                    _ => Request::Refused(Code::METHOD_NOT_ALLOWED, "method not allowed"),
                }
            }
            _ => Request::Refused(Code::NOT_FOUND, "no such resource"),
        }
    }
}

/// A query's `qos` (0, 1 or 2).
pub fn qos_of(query: &Query<'_>) -> Result<Option<u8>, &'static str> {
    match query.get("qos") {
        None => Ok(None),
        Some(q) => match q.parse::<u8>() {
            Ok(q @ 0..=2) => Ok(Some(q)),
            _ => Err("invalid qos"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_codec_coap::{MessageType, Token};

    fn request(code: Code, path: &str, queries: &[&str], observe: Option<u32>) -> Message {
        let mut m =
            Message::new(MessageType::Confirmable, code, 7).with_token(Token::new(b"tk").unwrap());
        for segment in path.split('/').skip(1) {
            m.options.push(
                junction_codec_coap::option::URI_PATH,
                bytes::Bytes::copy_from_slice(segment.as_bytes()),
            );
        }
        for q in queries {
            m.options.push(
                junction_codec_coap::option::URI_QUERY,
                bytes::Bytes::copy_from_slice(q.as_bytes()),
            );
        }
        if let Some(o) = observe {
            m.options.push_uint(junction_codec_coap::option::OBSERVE, o);
        }
        m
    }

    #[test]
    fn emqx_resources_are_read_with_their_methods() {
        assert_eq!(
            Request::of(&request(Code::POST, "/mqtt/connection", &[], None)),
            Request::Connect
        );
        assert_eq!(
            Request::of(&request(Code::PUT, "/mqtt/connection", &[], None)),
            Request::Heartbeat
        );
        assert_eq!(
            Request::of(&request(Code::DELETE, "/mqtt/connection", &[], None)),
            Request::Disconnect
        );
        assert_eq!(
            Request::of(&request(Code::POST, "/ps/a/b", &[], None)),
            Request::Publish("a/b".into())
        );
        assert_eq!(
            Request::of(&request(Code::GET, "/ps/a/+", &[], Some(0))),
            Request::Observe("a/+".into())
        );
        assert_eq!(
            Request::of(&request(Code::GET, "/ps/a/+", &[], Some(1))),
            Request::Unobserve("a/+".into())
        );
    }

    #[test]
    fn a_leading_empty_segment_is_a_leading_slash() {
        assert_eq!(
            Request::of(&request(Code::POST, "/ps//lead", &[], None)),
            Request::Publish("/lead".into())
        );
    }

    #[test]
    fn refusals_carry_emqx_codes_and_texts() {
        let refused = |m: &Message| match Request::of(m) {
            Request::Refused(code, text) => (code, text),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(&request(Code::POST, "/ps", &[], None)),
            (Code::BAD_REQUEST, "invalid topic")
        );
        assert_eq!(
            refused(&request(Code::GET, "/ps/t", &[], None)),
            (Code::BAD_REQUEST, "invalid observe value")
        );
        assert_eq!(
            refused(&request(Code::PUT, "/ps/t", &[], None)).0,
            Code::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            refused(&request(Code::GET, "/mqtt/connection", &[], None)).0,
            Code::METHOD_NOT_ALLOWED
        );
        let mut no_token = request(Code::GET, "/ps/t", &[], Some(0));
        no_token.token = Token::EMPTY;
        assert_eq!(
            refused(&no_token),
            (Code::BAD_REQUEST, "observe without token")
        );
        assert_eq!(
            refused(&request(Code::GET, "/elsewhere", &[], None)).0,
            Code::NOT_FOUND
        );
    }

    #[test]
    fn short_query_keys_are_aliases() {
        let m = request(
            Code::POST,
            "/ps/t",
            &["c=dev1", "t=123", "q=1", "r=true"],
            None,
        );
        let q = Query::of(&m);
        assert_eq!(q.get("clientid"), Some("dev1"));
        assert_eq!(q.get("token"), Some("123"));
        assert_eq!(qos_of(&q), Ok(Some(1)));
        assert_eq!(q.get("retain"), Some("true"));
        let bad_request = request(Code::POST, "/ps/t", &["qos=3"], None);
        let bad = Query::of(&bad_request);
        assert!(qos_of(&bad).is_err());
    }
}
