//! Forwarder Encapsulation (§5.5): a forwarder relays a client's message to the gateway
//! inside an ENCAPSULATED message.
//!
//! ```text
//! Length(1) MsgType(0xFE) Ctrl(1) WirelessNodeId(n) | MQTT-SN message(m)
//! \_____________ Length = 3 + n ______________/     \_ its own Length _/
//! ```
//!
//! Unlike every other message, the Length octet counts only the encapsulation header (it is
//! always the one-octet form, so n ≤ 252); the encapsulated message follows with its own
//! Length, which must cover the rest of the datagram. Ctrl bits 1–0 carry the broadcast
//! radius; the reserved bits are kept as received.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::message::Message;
use crate::msg_type::ENCAPSULATED;
use crate::wire::{self, MAX_SHORT_LEN};

/// Length, MsgType and Ctrl.
const HEADER_FIXED: usize = 3;

/// Decodes an ENCAPSULATED datagram (short-form header with MsgType 0xFE, checked by the
/// caller).
pub(crate) fn decode(datagram: Bytes) -> Result<Message, DecodeError> {
    let declared = usize::from(datagram[0]);
    if declared < HEADER_FIXED || declared > datagram.len() {
        return Err(DecodeError::EncapsulationLength {
            declared,
            available: datagram.len(),
        });
    }
    let ctrl = datagram[2];
    let wireless_node_id = datagram.slice(HEADER_FIXED..declared);
    let inner = datagram.slice(declared..);
    if wire::peek_type(&inner) == Some(ENCAPSULATED) {
        return Err(DecodeError::NestedEncapsulation);
    }
    Ok(Message::Encapsulated {
        ctrl,
        wireless_node_id,
        inner: Box::new(crate::decode_plain(inner)?),
    })
}

/// Appends an ENCAPSULATED message; nothing is written on error.
pub(crate) fn encode(
    ctrl: u8,
    wireless_node_id: &Bytes,
    inner: &Message,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if let Message::Encapsulated { .. } = inner {
        return Err(EncodeError::NestedEncapsulation);
    }
    let header = HEADER_FIXED + wireless_node_id.len();
    if header > MAX_SHORT_LEN {
        return Err(EncodeError::WirelessNodeIdTooLong(wireless_node_id.len()));
    }
    let start = buf.len();
    buf.put_u8(header as u8);
    buf.put_u8(ENCAPSULATED);
    buf.put_u8(ctrl);
    buf.put_slice(wireless_node_id);
    crate::encode_plain(inner, buf).inspect_err(|_| buf.truncate(start))
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;
    use bytes::Bytes;

    fn wrapped(inner: Message) -> Message {
        Message::Encapsulated {
            ctrl: 0x01,
            wireless_node_id: Bytes::from_static(&[0xAA, 0xBB]),
            inner: Box::new(inner),
        }
    }

    #[test]
    fn encapsulated_matches_section_5_5() {
        let msg = wrapped(Message::PingReq {
            client_id: Some("n1".into()),
        });
        assert_wire(
            &msg,
            &[0x05, 0xFE, 0x01, 0xAA, 0xBB, 0x04, 0x16, b'n', b'1'],
        );
    }

    #[test]
    fn encapsulated_may_have_an_empty_node_id_and_a_long_inner_message() {
        let inner = Message::Publish {
            flags: Flags::default(),
            topic: Topic::Id(1),
            msg_id: 0,
            data: Bytes::from(vec![1u8; 300]),
        };
        let msg = Message::Encapsulated {
            ctrl: 0xFF,
            wireless_node_id: Bytes::new(),
            inner: Box::new(inner),
        };
        let wire = encode_vec(&msg).unwrap();
        assert_eq!(&wire[..7], &[0x03, 0xFE, 0xFF, 0x01, 0x01, 0x35, 0x0C]);
        assert_eq!(decode_slice(&wire), Ok(msg));
    }

    #[test]
    fn encapsulation_length_must_cover_its_header_and_fit_the_datagram() {
        for declared in [0u8, 2] {
            assert_eq!(
                decode_slice(&[declared, 0xFE, 0x00, 0x02, 0x17]),
                Err(DecodeError::EncapsulationLength {
                    declared: declared.into(),
                    available: 5
                })
            );
        }
        assert_eq!(
            decode_slice(&[0x09, 0xFE, 0x00, 0x02, 0x17]),
            Err(DecodeError::EncapsulationLength {
                declared: 9,
                available: 5
            })
        );
    }

    #[test]
    fn encapsulated_message_must_be_whole_and_well_formed() {
        // No inner message at all.
        assert_eq!(
            decode_slice(&[0x04, 0xFE, 0x00, 0x07]),
            Err(DecodeError::TooShort(0))
        );
        // The inner message's Length must cover the rest of the datagram.
        assert_eq!(
            decode_slice(&[0x03, 0xFE, 0x00, 0x02, 0x17, 0x00]),
            Err(DecodeError::LengthMismatch {
                declared: 2,
                actual: 3
            })
        );
        assert_eq!(
            decode_slice(&[0x03, 0xFE, 0x00, 0x02, 0x03]),
            Err(DecodeError::UnknownType(0x03))
        );
    }

    #[test]
    fn nested_encapsulation_is_refused_both_ways() {
        assert_eq!(
            decode_slice(&[0x03, 0xFE, 0x00, 0x03, 0xFE, 0x00, 0x02, 0x17]),
            Err(DecodeError::NestedEncapsulation)
        );
        assert_eq!(
            decode_slice(&[0x03, 0xFE, 0x00, 0x01, 0x00, 0x04, 0xFE]),
            Err(DecodeError::NestedEncapsulation)
        );
        let msg = wrapped(wrapped(Message::PingResp));
        assert_eq!(encode_vec(&msg), Err(EncodeError::NestedEncapsulation));
    }

    #[test]
    fn encapsulation_header_is_one_octet_long() {
        assert_eq!(
            decode_slice(&[0x01, 0x00, 0x06, 0xFE, 0x02, 0x17]),
            Err(DecodeError::LongEncapsulationHeader)
        );
        let msg = Message::Encapsulated {
            ctrl: 0,
            wireless_node_id: Bytes::from(vec![0u8; 253]),
            inner: Box::new(Message::PingResp),
        };
        assert_eq!(
            encode_vec(&msg),
            Err(EncodeError::WirelessNodeIdTooLong(253))
        );
        let msg = Message::Encapsulated {
            ctrl: 0,
            wireless_node_id: Bytes::from(vec![0u8; 252]),
            inner: Box::new(Message::PingResp),
        };
        let wire = encode_vec(&msg).unwrap();
        assert_eq!(&wire[..2], &[0xFF, 0xFE]);
        assert_eq!(decode_slice(&wire), Ok(msg));
    }

    #[test]
    fn a_failed_inner_encoding_writes_nothing() {
        let msg = wrapped(Message::PingReq {
            client_id: Some("".into()),
        });
        let mut buf = bytes::BytesMut::from(&b"kept"[..]);
        assert_eq!(encode(&msg, &mut buf), Err(EncodeError::EmptyPingClientId));
        assert_eq!(&buf[..], b"kept");
    }
}
