//! Property tests: every valid message survives encode → decode unchanged; decoding
//! arbitrary or mutated datagrams never panics, and whatever decodes re-encodes to the
//! same octets (the encoding is canonical). Also block values and link-format documents.

use bytes::{Bytes, BytesMut};
use junction_codec_coap::link_format::{self, Limits, Link, LinkParam};
use junction_codec_coap::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn message_type() -> impl Strategy<Value = MessageType> {
    (0u8..4).prop_map(MessageType::from_bits)
}

fn option_number() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(option::KNOWN.to_vec()),
        2 => 0u16..300,
        1 => any::<u16>(),
    ]
}

fn option_value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..16),
        1 => vec(any::<u8>(), 250..300),
    ]
    .prop_map(Bytes::from)
}

fn non_empty_message() -> impl Strategy<Value = Message> {
    (
        message_type(),
        1u8..=255,
        any::<u16>(),
        vec(any::<u8>(), 0..=8),
        vec((option_number(), option_value()), 0..8),
        prop_oneof![3 => vec(any::<u8>(), 0..32), 1 => vec(any::<u8>(), 0..2000)],
    )
        .prop_map(|(mt, code, mid, token, options, payload)| {
            let mut msg = Message::new(mt, Code::from_byte(code), mid)
                .with_token(Token::new(&token).unwrap_or_default())
                .with_payload(payload);
            for (number, value) in options {
                msg.options.push(number, value);
            }
            msg
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        8 => non_empty_message(),
        1 => (message_type(), any::<u16>()).prop_map(|(mt, mid)| Message::new(mt, Code::EMPTY, mid)),
    ]
}

fn encode_vec(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf).expect("a valid message encodes");
    buf.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_messages_round_trip(msg in message()) {
        let bytes = encode_vec(&msg);
        prop_assert_eq!(encoded_len(&msg), Ok(bytes.len()));
        let decoded = decode_slice(&bytes).expect("an encoded message decodes");
        prop_assert_eq!(&decoded, &msg);
        prop_assert_eq!(encode_vec(&decoded), bytes);
    }

    #[test]
    fn arbitrary_datagrams_never_panic_and_decode_canonically(data in vec(any::<u8>(), 0..64)) {
        if let Ok(msg) = decode_slice(&data) {
            prop_assert_eq!(encode_vec(&msg), data);
        }
    }

    #[test]
    fn mutated_messages_never_panic_and_decode_canonically(
        msg in message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_vec(&msg);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        match decode_slice(&bytes) {
            Ok(decoded) => prop_assert_eq!(encode_vec(&decoded), bytes),
            Err(err) => {
                // A Reset is due exactly for a Confirmable message with a parsed header.
                prop_assert_eq!(err.reset_reply().is_some(), err.is_confirmable());
            }
        }
    }

    #[test]
    fn block_values_round_trip(num in 0u32..(1 << 20), more: bool, szx in 0u8..7) {
        let block = Block::new(num, more, szx).unwrap();
        let value = block.encode().unwrap();
        prop_assert!(value.len() <= 3);
        prop_assert_eq!(Block::decode(&value), Ok(block));
    }

    #[test]
    fn block2_slices_reassemble_the_body(body in vec(any::<u8>(), 0..3000), szx in 0u8..7) {
        let body = Bytes::from(body);
        let mut assembled = Vec::new();
        let mut num = 0;
        loop {
            let (block, slice) = block2_slice(&body, Block::new(num, false, szx).unwrap()).unwrap();
            assembled.extend_from_slice(&slice);
            if !block.more {
                break;
            }
            num += 1;
        }
        prop_assert_eq!(assembled, body.to_vec());
    }

    #[test]
    fn block1_reassembles_what_block2_slices(body in vec(any::<u8>(), 0..3000), szx in 0u8..7) {
        let body = Bytes::from(body);
        let mut asm = Block1Assembler::new(body.len());
        let mut num = 0;
        loop {
            let (block, slice) = block2_slice(&body, Block::new(num, false, szx).unwrap()).unwrap();
            match asm.push(block, &slice).unwrap() {
                Block1Progress::Continue(_) => num += 1,
                Block1Progress::Complete(whole) => {
                    prop_assert_eq!(whole, body);
                    break;
                }
            }
        }
    }

    #[test]
    fn link_format_parsing_never_panics(doc in "[<>;,=\"\\\\a-z0-9/ .]{0,64}") {
        if let Ok(links) = link_format::parse(&doc, Limits::default()) {
            let written = link_format::serialize(&links).expect("parsed links are writable");
            prop_assert_eq!(link_format::parse(&written, Limits::default()), Ok(links));
        }
    }

    #[test]
    fn built_links_round_trip(
        links in vec(("[/a-z0-9]{0,8}", vec(("[a-z]{1,4}", proptest::option::of(".{0,6}")), 0..4)), 0..5)
    ) {
        let links: Vec<Link> = links
            .into_iter()
            .map(|(target, params)| Link {
                target,
                params: params
                    .into_iter()
                    .map(|(name, value)| LinkParam { quoted: value.is_some(), name, value })
                    .collect(),
            })
            .collect();
        let written = link_format::serialize(&links).unwrap();
        prop_assert_eq!(link_format::parse(&written, Limits::default()), Ok(links));
    }
}
