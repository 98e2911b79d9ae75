//! Property tests: every frame survives encode → decode unchanged for the version it is
//! written in (names and values full of `:`, LF, CR and `\`, binary bodies), and a stream of
//! frames and heart-beats decodes the same however it is split.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_codec_stomp::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Characters drawn mostly from the ones escaping cares about.
fn text(min: usize, excluded: &'static [char]) -> impl Strategy<Value = ByteString> {
    let character = prop_oneof![
        2 => any::<char>(),
        3 => prop::sample::select(vec![':', '\n', '\r', '\\', 'c', 'n', 'r', 't', ' ', '\0', 'é']),
    ]
    .prop_filter("excluded", move |c| !excluded.contains(c));
    vec(character, min..12)
        .prop_map(|chars| ByteString::from(chars.into_iter().collect::<String>()))
}

fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    ]
}

fn command(connect_like: bool) -> impl Strategy<Value = Command> {
    let commands: Vec<Command> = Command::ALL
        .into_iter()
        .filter(|command| command.is_connect_like() == connect_like)
        .collect();
    prop::sample::select(commands)
}

/// A frame of one of `commands` whose headers avoid `excluded_in_names` / `_in_values`
/// (octets the frame's escaping cannot carry) and `content-length`.
fn frame(
    connect_like: bool,
    excluded_in_names: &'static [char],
    excluded_in_values: &'static [char],
) -> impl Strategy<Value = Frame> {
    let name = text(1, excluded_in_names)
        .prop_filter("not content-length", |name| name != "content-length");
    (
        command(connect_like),
        vec((name, text(0, excluded_in_values)), 0..6),
        body(),
    )
        .prop_map(|(command, headers, body)| Frame {
            command,
            headers,
            body,
        })
}

/// `frame` as decoded after encoding: a non-empty body gains a `content-length`.
fn with_content_length(mut frame: Frame) -> Frame {
    if !frame.body.is_empty() {
        let length = frame.body.len().to_string();
        frame.headers.push(("content-length".into(), length.into()));
    }
    frame
}

fn round_trip(frame: &Frame, version: Version) -> Item {
    let mut buf = BytesMut::new();
    encode(frame, version, &mut buf);
    let item = Decoder::new(version, Limits::UNLIMITED)
        .decode(&mut buf)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is complete");
    assert!(buf.is_empty(), "exactly one frame was written");
    item
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn v1_2_frames_round_trip(frame in frame(false, &[], &[])) {
        prop_assert_eq!(round_trip(&frame, Version::V1_2), Item::Frame(with_content_length(frame)));
    }

    #[test]
    fn v1_1_frames_without_cr_round_trip(frame in frame(false, &['\r'], &['\r'])) {
        prop_assert_eq!(round_trip(&frame, Version::V1_1), Item::Frame(with_content_length(frame)));
    }

    #[test]
    fn v1_0_frames_round_trip(frame in frame(false, &['\r', '\n', ':'], &['\r', '\n'])) {
        prop_assert_eq!(round_trip(&frame, Version::V1_0), Item::Frame(with_content_length(frame)));
    }

    #[test]
    fn connect_frames_round_trip_unescaped(
        frame in frame(true, &['\r', '\n', ':'], &['\r', '\n']),
        version in prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2]),
    ) {
        prop_assert_eq!(round_trip(&frame, version), Item::Frame(with_content_length(frame)));
    }

    #[test]
    fn any_frame_encodes_to_one_decodable_frame(
        frame in frame(false, &[], &[]),
        version in prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2]),
    ) {
        // Whatever a version cannot represent is substituted, never leaked onto the wire.
        let Item::Frame(decoded) = round_trip(&frame, version) else {
            panic!("a heart-beat");
        };
        prop_assert_eq!(decoded.command, frame.command);
        prop_assert_eq!(decoded.headers.len(), frame.headers.len() + usize::from(!frame.body.is_empty()));
        prop_assert_eq!(decoded.body, frame.body);
    }

    #[test]
    fn split_streams_decode_the_same(
        frames in vec(frame(false, &[], &[]), 1..5),
        heartbeats in vec(0usize..3, 5),
        split in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for (frame, beats) in frames.into_iter().zip(heartbeats) {
            encode(&frame, Version::V1_2, &mut wire);
            expected.push(Item::Frame(with_content_length(frame)));
            for _ in 0..beats {
                encode_heartbeat(&mut wire);
                expected.push(Item::HeartBeat);
            }
        }
        let at = split.index(wire.len() + 1);
        let mut decoder = Decoder::new(Version::V1_2, Limits::UNLIMITED);
        let mut buf = BytesMut::from(&wire[..at]);
        let mut items = Vec::new();
        while let Some(item) = decoder.decode(&mut buf).expect("valid stream") {
            items.push(item);
        }
        buf.extend_from_slice(&wire[at..]);
        while let Some(item) = decoder.decode(&mut buf).expect("valid stream") {
            items.push(item);
        }
        prop_assert_eq!(items, expected);
        prop_assert!(buf.is_empty());
    }
}
