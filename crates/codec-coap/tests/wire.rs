//! The message format of RFC 7252 §3 on known datagrams: well-formed ones decode to the
//! expected message and re-encode to the same octets; every malformed case is refused with
//! the error that says why, and with what the server needs to answer (or not) a Reset.

use bytes::{Bytes, BytesMut};
use junction_codec_coap::option::*;
use junction_codec_coap::*;

fn enc(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf).expect("encodes");
    buf.to_vec()
}

fn kind(datagram: &[u8]) -> DecodeErrorKind {
    decode_slice(datagram).expect_err("malformed").kind()
}

#[test]
fn decodes_a_confirmable_get_with_options_and_payload() {
    // CON GET, TKL 2, MID 0x1234, token a1b2, Uri-Path "ps", Uri-Path "t", Uri-Query "q=1", payload "hi"
    let datagram = [
        0x42, 0x01, 0x12, 0x34, 0xA1, 0xB2, // header + token
        0xB2, b'p', b's', // delta 11 (Uri-Path), len 2
        0x01, b't', // delta 0, len 1
        0x43, b'q', b'=', b'1', // delta 4 (Uri-Query 15), len 3
        0xFF, b'h', b'i',
    ];
    let msg = decode_slice(&datagram).unwrap();
    assert_eq!(msg.message_type, MessageType::Confirmable);
    assert_eq!(msg.code, Code::GET);
    assert_eq!(msg.message_id, 0x1234);
    assert_eq!(msg.token.as_bytes(), &[0xA1, 0xB2]);
    assert_eq!(msg.uri_path().as_deref(), Some("ps/t"));
    assert_eq!(msg.uri_queries(), Some(vec![("q", "1")]));
    assert_eq!(&msg.payload[..], b"hi");
    assert_eq!(enc(&msg), datagram);
}

#[test]
fn extended_delta_and_length_forms_round_trip() {
    let mut msg = Message::new(MessageType::NonConfirmable, Code::CONTENT, 1);
    msg.options.push(CONTENT_FORMAT, vec![0; 12]); // length 12: nibble
    msg.options.push(SIZE1, vec![7; 13]); // delta 48: 13-form; length 13: 13-form
    msg.options.push(300, vec![1; 268]); // delta 240: 13-form; length 268: 13-form
    msg.options.push(1000, vec![2; 269]); // delta 700: 14-form; length 269: 14-form
    msg.options.push(65535, vec![3; 70_000 - 65_535]); // largest number
    let bytes = enc(&msg);
    assert_eq!(decode_slice(&bytes).unwrap(), msg);
    // Size1 (60): delta 48 = 13 + 35, length 13 = 13 + 0.
    assert_eq!(&bytes[4 + 1 + 12..4 + 1 + 12 + 3], &[0xDD, 35, 0]);
    assert_eq!(encoded_len(&msg), Ok(bytes.len()));
}

#[test]
fn a_datagram_shorter_than_the_header_is_ignored_without_reset() {
    for len in 0..4 {
        let err = decode_slice(&[0x40, 0x01, 0x00][..len.min(3)]).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::TruncatedHeader(len.min(3)));
        assert_eq!(err.message_id(), None);
        assert_eq!(err.reset_reply(), None);
    }
}

#[test]
fn a_version_other_than_1_is_ignored_without_reset() {
    for first in [0x00, 0x80, 0xC0] {
        let err = decode_slice(&[first, 0x01, 0x00, 0x01]).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::UnsupportedVersion(first >> 6));
        assert_eq!(err.reset_reply(), None, "RFC 7252 §3: silently ignored");
    }
}

#[test]
fn token_lengths_9_to_15_are_format_errors_answered_with_reset_for_con() {
    for tkl in 9..=15u8 {
        let mut datagram = vec![0x40 | tkl, 0x01, 0xAB, 0xCD];
        datagram.extend_from_slice(&[0; 15]);
        let err = decode_slice(&datagram).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::ReservedTokenLength(tkl));
        assert!(err.is_confirmable());
        assert_eq!(err.message_id(), Some(0xABCD));
        assert_eq!(err.reset_reply(), Some(Message::reset(0xABCD)));
    }
    // The same error in a NON is ignored (RFC 7252 §4.3 MAY reject).
    let err = decode_slice(&[0x59, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
    assert!(!err.is_confirmable());
    assert_eq!(err.reset_reply(), None);
}

#[test]
fn a_token_running_past_the_datagram_is_a_format_error() {
    assert_eq!(
        kind(&[0x44, 0x01, 0, 1, 0xAA, 0xBB]),
        DecodeErrorKind::TruncatedToken {
            declared: 4,
            available: 2
        }
    );
}

#[test]
fn option_delta_15_is_a_format_error_and_carries_the_token() {
    let err = decode_slice(&[0x41, 0x01, 0, 9, 0x77, 0xF1, 0x00]).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::ReservedOptionDelta);
    assert_eq!(err.token().map(|t| t.as_bytes().to_vec()), Some(vec![0x77]));
    assert_eq!(err.reset_reply(), Some(Message::reset(9)));
}

#[test]
fn option_length_15_is_a_format_error() {
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xBF]),
        DecodeErrorKind::ReservedOptionLength
    );
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0x0F, 0xFF]),
        DecodeErrorKind::ReservedOptionLength
    );
}

#[test]
fn truncated_extended_fields_and_values_are_format_errors() {
    // Delta nibble 13 with no extension octet.
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xD0]),
        DecodeErrorKind::TruncatedOption { number: 0 }
    );
    // Delta nibble 14 with one of two extension octets.
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xE0, 0x00]),
        DecodeErrorKind::TruncatedOption { number: 0 }
    );
    // Length nibble 14 with one extension octet.
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xBE, 0x00]),
        DecodeErrorKind::TruncatedOption { number: 11 }
    );
    // Value of 3 octets with 1 present.
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xB3, b'a']),
        DecodeErrorKind::TruncatedOption { number: 11 }
    );
    // A 65 804-octet length in a tiny datagram: refused before any allocation.
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0x1E, 0xFF, 0xFF, 1]),
        DecodeErrorKind::TruncatedOption { number: 1 }
    );
}

#[test]
fn option_numbers_past_65535_are_format_errors() {
    // 65 535 + 269 = 65 804 after one option, then any further delta overflows.
    let datagram = [0x40, 0x01, 0, 1, 0xE0, 0xFF, 0xFF, 0x10];
    assert_eq!(
        kind(&datagram),
        DecodeErrorKind::OptionNumberOverflow(65_804)
    );
    let ok = [0x40, 0x01, 0, 1, 0xE0, 0xFE, 0xF2];
    let msg = decode_slice(&ok).unwrap();
    assert_eq!(
        msg.options.iter().map(|o| o.number).collect::<Vec<_>>(),
        [65_535]
    );
}

#[test]
fn a_payload_marker_without_payload_is_a_format_error() {
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xFF]),
        DecodeErrorKind::EmptyPayload
    );
    assert_eq!(
        kind(&[0x40, 0x01, 0, 1, 0xB1, b'a', 0xFF]),
        DecodeErrorKind::EmptyPayload
    );
}

#[test]
fn an_empty_message_with_a_token_options_or_payload_is_a_format_error() {
    // RFC 7252 §4.1: TKL 0 and nothing after the Message ID.
    assert_eq!(
        kind(&[0x41, 0x00, 0, 1, 0xAA]),
        DecodeErrorKind::NonEmptyEmptyMessage
    );
    assert_eq!(
        kind(&[0x41, 0x00, 0, 1]),
        DecodeErrorKind::NonEmptyEmptyMessage
    );
    assert_eq!(
        kind(&[0x40, 0x00, 0, 1, 0xB1, b'a']),
        DecodeErrorKind::NonEmptyEmptyMessage
    );
    assert_eq!(
        kind(&[0x60, 0x00, 0, 1, 0xFF, 1]),
        DecodeErrorKind::NonEmptyEmptyMessage
    );
    let err = decode_slice(&[0x41, 0x00, 0, 5, 0xAA]).unwrap_err();
    assert_eq!(err.reset_reply(), Some(Message::reset(5)));
    // …and cannot be encoded either.
    let bad = Message::ping(1).with_token(Token::from_u64(1));
    assert_eq!(
        encode(&bad, &mut BytesMut::new()),
        Err(EncodeError::NonEmptyEmptyMessage)
    );
}

#[test]
fn empty_messages_are_four_octets() {
    assert_eq!(enc(&Message::ping(0x0102)), [0x40, 0x00, 0x01, 0x02]);
    assert_eq!(enc(&Message::empty_ack(0x0102)), [0x60, 0x00, 0x01, 0x02]);
    assert_eq!(enc(&Message::reset(0x0102)), [0x70, 0x00, 0x01, 0x02]);
    assert_eq!(
        decode_slice(&[0x70, 0x00, 0x01, 0x02]).unwrap(),
        Message::reset(0x0102)
    );
}

#[test]
fn unknown_critical_options_survive_decoding_and_are_detected() {
    // Option 2049 (critical, unknown) with value "x".
    let mut msg = Message::new(MessageType::Confirmable, Code::POST, 3);
    msg.set_uri_path("ps/t");
    msg.options.push(2049, Bytes::from_static(b"x"));
    let decoded = decode_slice(&enc(&msg)).unwrap();
    assert_eq!(decoded.unknown_critical(KNOWN), Some(2049));
    let reply = decoded.response(Code::BAD_OPTION);
    assert_eq!(
        (reply.message_type, reply.code),
        (MessageType::Acknowledgement, Code::BAD_OPTION)
    );
}

#[test]
fn an_option_too_long_to_encode_is_refused_and_nothing_is_written() {
    let mut msg = Message::new(MessageType::Confirmable, Code::PUT, 3);
    msg.options.push(URI_PATH, vec![0; 65_805]);
    let mut buf = BytesMut::from(&b"keep"[..]);
    assert_eq!(
        encode(&msg, &mut buf),
        Err(EncodeError::OptionTooLong {
            number: URI_PATH,
            len: 65_805
        })
    );
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn reserved_code_classes_decode_for_the_caller_to_judge() {
    let msg = decode_slice(&[0x40, 0xE1, 0, 1]).unwrap();
    assert!(msg.code.is_reserved_class());
    assert_eq!(enc(&msg), [0x40, 0xE1, 0, 1]);
}
