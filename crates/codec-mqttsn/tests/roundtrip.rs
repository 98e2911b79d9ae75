//! Property tests: every message survives encode → decode unchanged, in both Length forms;
//! and decoding arbitrary or mutated datagrams never panics, while whatever decodes
//! re-encodes to an equal message.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_codec_mqttsn::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn flags() -> impl Strategy<Value = Flags> {
    any::<u8>().prop_map(Flags::from_byte)
}

fn rc() -> impl Strategy<Value = ReturnCode> {
    any::<u8>().prop_map(ReturnCode::from_byte)
}

fn string() -> impl Strategy<Value = ByteString> {
    ".{0,12}".prop_map(ByteString::from)
}

/// Mostly short, sometimes long enough to need the three-octet Length form.
fn binary() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..16),
        1 => vec(any::<u8>(), 240..600),
    ]
    .prop_map(Bytes::from)
}

fn publish_topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        any::<u16>().prop_map(Topic::Id),
        any::<u16>().prop_map(Topic::Predefined),
        any::<[u8; 2]>().prop_map(Topic::Short),
        any::<[u8; 2]>().prop_map(|raw| Topic::Reserved(Bytes::copy_from_slice(&raw))),
    ]
}

fn subscription_topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        string().prop_map(Topic::Name),
        any::<u16>().prop_map(Topic::Predefined),
        any::<[u8; 2]>().prop_map(Topic::Short),
        vec(any::<u8>(), 0..8).prop_map(|raw| Topic::Reserved(Bytes::from(raw))),
    ]
}

/// Flags whose TopicIdType agrees with `topic`.
fn with_topic(flags: Flags, topic: &Topic) -> Flags {
    Flags {
        topic_id_type: topic.id_type(),
        ..flags
    }
}

fn will_topic() -> impl Strategy<Value = (Flags, Option<ByteString>)> {
    prop_oneof![
        (flags(), string()).prop_map(|(flags, topic)| (flags, Some(topic))),
        Just((Flags::default(), None)),
    ]
}

/// Every message type except ENCAPSULATED.
fn plain_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u8>(), any::<u16>())
            .prop_map(|(gw_id, duration)| Message::Advertise { gw_id, duration }),
        any::<u8>().prop_map(|radius| Message::SearchGw { radius }),
        (any::<u8>(), binary()).prop_map(|(gw_id, gw_add)| Message::GwInfo { gw_id, gw_add }),
        (flags(), any::<u8>(), any::<u16>(), string()).prop_map(
            |(flags, protocol_id, duration, client_id)| Message::Connect {
                flags,
                protocol_id,
                duration,
                client_id
            }
        ),
        rc().prop_map(|rc| Message::ConnAck { rc }),
        Just(Message::WillTopicReq),
        will_topic().prop_map(|(flags, topic)| Message::WillTopic { flags, topic }),
        Just(Message::WillMsgReq),
        binary().prop_map(|payload| Message::WillMsg { payload }),
        (any::<u16>(), any::<u16>(), string()).prop_map(|(topic_id, msg_id, topic_name)| {
            Message::Register {
                topic_id,
                msg_id,
                topic_name,
            }
        }),
        (any::<u16>(), any::<u16>(), rc()).prop_map(|(topic_id, msg_id, rc)| Message::RegAck {
            topic_id,
            msg_id,
            rc
        }),
        (flags(), publish_topic(), any::<u16>(), binary()).prop_map(
            |(flags, topic, msg_id, data)| Message::Publish {
                flags: with_topic(flags, &topic),
                topic,
                msg_id,
                data,
            }
        ),
        (any::<u16>(), any::<u16>(), rc()).prop_map(|(topic_id, msg_id, rc)| Message::PubAck {
            topic_id,
            msg_id,
            rc
        }),
        any::<u16>().prop_map(|msg_id| Message::PubRec { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubRel { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubComp { msg_id }),
        (flags(), any::<u16>(), subscription_topic()).prop_map(|(flags, msg_id, topic)| {
            Message::Subscribe {
                flags: with_topic(flags, &topic),
                msg_id,
                topic,
            }
        }),
        (flags(), any::<u16>(), any::<u16>(), rc()).prop_map(|(flags, topic_id, msg_id, rc)| {
            Message::SubAck {
                flags,
                topic_id,
                msg_id,
                rc,
            }
        }),
        (flags(), any::<u16>(), subscription_topic()).prop_map(|(flags, msg_id, topic)| {
            Message::Unsubscribe {
                flags: with_topic(flags, &topic),
                msg_id,
                topic,
            }
        }),
        any::<u16>().prop_map(|msg_id| Message::UnsubAck { msg_id }),
        of(".{1,12}".prop_map(ByteString::from))
            .prop_map(|client_id| Message::PingReq { client_id }),
        Just(Message::PingResp),
        of(any::<u16>()).prop_map(|duration| Message::Disconnect { duration }),
        will_topic().prop_map(|(flags, topic)| Message::WillTopicUpd { flags, topic }),
        rc().prop_map(|rc| Message::WillTopicResp { rc }),
        binary().prop_map(|payload| Message::WillMsgUpd { payload }),
        rc().prop_map(|rc| Message::WillMsgResp { rc }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => plain_message(),
        1 => (any::<u8>(), vec(any::<u8>(), 0..=252), plain_message()).prop_map(
            |(ctrl, node_id, inner)| Message::Encapsulated {
                ctrl,
                wireless_node_id: Bytes::from(node_id),
                inner: Box::new(inner),
            }
        ),
    ]
}

fn encode_vec(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf).expect("a generated message encodes");
    buf.to_vec()
}

/// Decodes `datagram`; if it is a message, checks that it re-encodes to an equal message
/// and that the encoding is canonical (the same fuzz/fuzz_targets/mqttsn_decode.rs checks).
fn decode_then_round_trip(datagram: &[u8]) {
    if let Ok(msg) = decode_slice(datagram) {
        let encoded = encode_vec(&msg);
        let again = decode_slice(&encoded).expect("the re-encoding decodes");
        assert_eq!(again, msg);
        assert_eq!(encode_vec(&again), encoded, "the encoding is canonical");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let wire = encode_vec(&msg);
        prop_assert_eq!(decode_slice(&wire), Ok(msg));
    }

    #[test]
    fn the_short_length_form_is_used_exactly_when_the_message_fits_255_octets(
        msg in plain_message()
    ) {
        let wire = encode_vec(&msg);
        if wire.len() <= 255 {
            prop_assert_eq!(usize::from(wire[0]), wire.len());
        } else {
            prop_assert_eq!(wire[0], 0x01);
            prop_assert_eq!(usize::from(u16::from_be_bytes([wire[1], wire[2]])), wire.len());
        }
    }

    #[test]
    fn the_long_length_form_of_any_message_decodes_the_same(msg in plain_message()) {
        let wire = encode_vec(&msg);
        prop_assume!(wire[0] != 0x01);
        let mut long = vec![0x01];
        long.extend_from_slice(&((wire.len() + 2) as u16).to_be_bytes());
        long.extend_from_slice(&wire[1..]);
        prop_assert_eq!(decode_slice(&long), Ok(msg));
    }

    #[test]
    fn arbitrary_datagrams_never_panic(datagram in vec(any::<u8>(), 0..64)) {
        decode_then_round_trip(&datagram);
    }

    #[test]
    fn datagrams_with_a_consistent_length_never_panic(
        msg_type in any::<u8>(),
        body in vec(any::<u8>(), 0..32),
    ) {
        // Most random datagrams fail the Length check; these reach every body decoder.
        let mut datagram = vec![(body.len() + 2) as u8, msg_type];
        datagram.extend_from_slice(&body);
        decode_then_round_trip(&datagram);
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in message(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_vec(&msg);
        let mut mutated = wire.clone();
        mutated[position.index(wire.len())] = value;
        decode_then_round_trip(&mutated);
        decode_then_round_trip(&wire[..cut.index(wire.len())]);
    }
}
