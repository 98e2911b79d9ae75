//! Unit tests: spec example frames, incremental feeding, heart-beats, escaping, limits and
//! every decode error.

use bytes::{Bytes, BytesMut};

use crate::*;

/// The example frames of the STOMP 1.2 specification, one per command (`^@` is NUL).
const SPEC_EXAMPLES: &[(&[u8], Command)] = &[
    (b"CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0", Command::Connect),
    (b"STOMP\naccept-version:1.2\nhost:stomp.github.org\n\n\0", Command::Stomp),
    (b"CONNECTED\nversion:1.2\n\n\0", Command::Connected),
    (b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0", Command::Send),
    (b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0", Command::Subscribe),
    (b"UNSUBSCRIBE\nid:0\n\n\0", Command::Unsubscribe),
    (b"ACK\nid:12345\ntransaction:tx1\n\n\0", Command::Ack),
    (b"NACK\nid:12345\ntransaction:tx1\n\n\0", Command::Nack),
    (b"BEGIN\ntransaction:tx1\n\n\0", Command::Begin),
    (b"COMMIT\ntransaction:tx1\n\n\0", Command::Commit),
    (b"ABORT\ntransaction:tx1\n\n\0", Command::Abort),
    (b"DISCONNECT\nreceipt:77\n\n\0", Command::Disconnect),
    (b"RECEIPT\nreceipt-id:77\n\n\0", Command::Receipt),
    (
        b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
        Command::Message,
    ),
    (
        b"ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:170\nmessage:malformed frame received\n\nThe message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\nfor message propagation.\n\0",
        Command::Error,
    ),
];

fn decoder(version: Version) -> Decoder {
    Decoder::new(version, Limits::default())
}

fn decode_one(version: Version, input: &[u8]) -> Result<Option<Item>, DecodeError> {
    decoder(version).decode(&mut BytesMut::from(input))
}

fn decode_frame(version: Version, input: &[u8]) -> Frame {
    match decode_one(version, input) {
        Ok(Some(Item::Frame(frame))) => frame,
        other => panic!("expected a frame from {input:?}, got {other:?}"),
    }
}

fn decode_err(version: Version, limits: Limits, input: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(input);
    match Decoder::new(version, limits).decode(&mut buf) {
        Err(error) => {
            assert_eq!(&buf[..], input, "an error consumes nothing");
            error
        }
        other => panic!("expected an error from {input:?}, got {other:?}"),
    }
}

/// Decodes every item `buf` holds until `Ok(None)`.
fn drain(decoder: &mut Decoder, buf: &mut BytesMut) -> Vec<Item> {
    let mut items = Vec::new();
    while let Some(item) = decoder.decode(buf).expect("valid input") {
        items.push(item);
    }
    items
}

fn encoded(frame: &Frame, version: Version) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(frame, version, &mut buf);
    buf
}

fn headers(frame: &Frame) -> Vec<(&str, &str)> {
    frame
        .headers
        .iter()
        .map(|(name, value)| (&**name, &**value))
        .collect()
}

#[test]
fn spec_examples_decode_for_every_command() {
    let mut seen = Vec::new();
    for &(input, command) in SPEC_EXAMPLES {
        let mut buf = BytesMut::from(input);
        let Some(Item::Frame(frame)) = decoder(Version::V1_2).decode(&mut buf).unwrap() else {
            panic!("no frame from {input:?}");
        };
        assert_eq!(frame.command, command);
        assert!(buf.is_empty(), "the whole frame is consumed");
        seen.push(command);
    }
    for command in Command::ALL {
        assert!(seen.contains(&command), "{command} has a spec example");
    }
}

#[test]
fn spec_example_headers_and_bodies_decode() {
    let connect = decode_frame(Version::V1_2, SPEC_EXAMPLES[0].0);
    assert_eq!(
        headers(&connect),
        [("accept-version", "1.2"), ("host", "stomp.github.org")]
    );
    assert!(connect.body.is_empty());

    let send = decode_frame(Version::V1_2, SPEC_EXAMPLES[3].0);
    assert_eq!(send.header("destination"), Some("/queue/a"));
    assert_eq!(send.header("content-type"), Some("text/plain"));
    assert_eq!(&send.body[..], b"hello queue a");

    let error = decode_frame(Version::V1_2, SPEC_EXAMPLES[14].0);
    assert_eq!(error.header("content-length"), Some("170"));
    assert_eq!(error.body.len(), 170);
    assert!(error.body.ends_with(b"propagation.\n"));
}

#[test]
fn content_length_body_may_contain_nul() {
    let frame = decode_frame(
        Version::V1_2,
        b"SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0",
    );
    assert_eq!(&frame.body[..], b"a\0b\0c");
}

#[test]
fn content_length_zero_is_an_empty_body() {
    let frame = decode_frame(Version::V1_2, b"SEND\ncontent-length:0\n\n\0");
    assert!(frame.body.is_empty());
}

#[test]
fn body_without_content_length_ends_at_first_nul() {
    let mut buf = BytesMut::from(&b"SEND\n\nab\0cd"[..]);
    let Some(Item::Frame(frame)) = decoder(Version::V1_2).decode(&mut buf).unwrap() else {
        panic!("no frame");
    };
    assert_eq!(&frame.body[..], b"ab");
    assert_eq!(&buf[..], b"cd", "the rest stays buffered");
}

#[test]
fn crlf_line_endings_are_accepted() {
    let frame = decode_frame(
        Version::V1_2,
        b"SEND\r\ndestination:/queue/a\r\nreceipt:1\r\n\r\nhi\0",
    );
    assert_eq!(frame.command, Command::Send);
    assert_eq!(
        headers(&frame),
        [("destination", "/queue/a"), ("receipt", "1")]
    );
    assert_eq!(&frame.body[..], b"hi");
    // Before a version is negotiated too.
    let connect = decode_frame(Version::V1_0, b"CONNECT\r\nlogin:a\r\n\r\n\0");
    assert_eq!(connect.header("login"), Some("a"));
}

#[test]
fn header_splits_at_first_colon() {
    let frame = decode_frame(Version::V1_0, b"SEND\ndestination:tcp://host:1/a\n\n\0");
    assert_eq!(frame.header("destination"), Some("tcp://host:1/a"));
    let empty = decode_frame(Version::V1_2, b"SEND\nreceipt:\n\n\0");
    assert_eq!(empty.header("receipt"), Some(""));
}

#[test]
fn first_repeated_header_wins() {
    let frame = decode_frame(Version::V1_2, b"MESSAGE\nfoo:World\nfoo:I am\n\n\0");
    assert_eq!(frame.header("foo"), Some("World"));
    assert_eq!(frame.headers.len(), 2, "every entry is kept in order");
}

#[test]
fn first_content_length_frames_the_body() {
    let frame = decode_frame(
        Version::V1_2,
        b"SEND\ncontent-length:1\ncontent-length:3\n\na\0",
    );
    assert_eq!(&frame.body[..], b"a");
}

#[test]
fn several_frames_in_one_buffer_decode_in_order() {
    let mut input = Vec::new();
    for &(frame, _) in SPEC_EXAMPLES {
        input.extend_from_slice(frame);
    }
    let mut buf = BytesMut::from(&input[..]);
    let items = drain(&mut decoder(Version::V1_2), &mut buf);
    let commands: Vec<Command> = items
        .iter()
        .map(|item| match item {
            Item::Frame(frame) => frame.command,
            Item::HeartBeat => panic!("no heart-beats in the input"),
        })
        .collect();
    let expected: Vec<Command> = SPEC_EXAMPLES.iter().map(|&(_, command)| command).collect();
    assert_eq!(commands, expected);
    assert!(buf.is_empty());
}

#[test]
fn heartbeats_between_frames_are_one_item_per_eol() {
    let input = b"\n\r\nSEND\n\na\0\n\nACK\nid:1\n\n\0\r\n";
    let mut buf = BytesMut::from(&input[..]);
    let items = drain(&mut decoder(Version::V1_2), &mut buf);
    let shape: Vec<&str> = items
        .iter()
        .map(|item| match item {
            Item::Frame(frame) => frame.command.as_str(),
            Item::HeartBeat => "hb",
        })
        .collect();
    assert_eq!(shape, ["hb", "hb", "SEND", "hb", "hb", "ACK", "hb"]);
    assert!(buf.is_empty());
}

#[test]
fn lone_cr_waits_for_its_lf() {
    let mut buf = BytesMut::from(&b"\r"[..]);
    let mut decoder = decoder(Version::V1_2);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Item::HeartBeat)));
    assert!(buf.is_empty());
}

/// All spec examples with heart-beats, CR LF frames and escapes mixed in.
fn stream() -> Vec<u8> {
    let mut input = b"\n".to_vec();
    for &(frame, _) in SPEC_EXAMPLES {
        input.extend_from_slice(frame);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"SEND\r\nkey\\c:a\\nb\\\\\\r\r\ncontent-length:3\r\n\r\n\0\n\0\0\n");
    input
}

#[test]
fn frames_split_at_every_byte_position_decode_the_same() {
    let input = stream();
    let whole = drain(&mut decoder(Version::V1_2), &mut BytesMut::from(&input[..]));
    assert_eq!(whole.len(), 1 + 2 * SPEC_EXAMPLES.len() + 2);
    for split in 0..=input.len() {
        let mut decoder = decoder(Version::V1_2);
        let mut buf = BytesMut::from(&input[..split]);
        let mut items = drain(&mut decoder, &mut buf);
        buf.extend_from_slice(&input[split..]);
        items.extend(drain(&mut decoder, &mut buf));
        assert_eq!(items, whole, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn frames_fed_one_byte_at_a_time_decode_the_same() {
    let input = stream();
    let whole = drain(&mut decoder(Version::V1_2), &mut BytesMut::from(&input[..]));
    let mut decoder = decoder(Version::V1_2);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for &octet in &input {
        buf.extend_from_slice(&[octet]);
        items.extend(drain(&mut decoder, &mut buf));
    }
    assert_eq!(items, whole);
}

#[test]
fn incomplete_frames_consume_nothing() {
    let input = SPEC_EXAMPLES[3].0;
    for end in 0..input.len() {
        let mut buf = BytesMut::from(&input[..end]);
        assert_eq!(
            decoder(Version::V1_2).decode(&mut buf),
            Ok(None),
            "prefix of {end}"
        );
        assert_eq!(&buf[..], &input[..end]);
    }
}

#[test]
fn headers_and_body_are_zero_copy_slices_of_the_buffer() {
    let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/a\n\nhello\0"[..]);
    let start = buf.as_ptr() as usize;
    let range = start..start + buf.len();
    let Some(Item::Frame(frame)) = decoder(Version::V1_2).decode(&mut buf).unwrap() else {
        panic!("no frame");
    };
    let (name, value) = &frame.headers[0];
    for part in [
        name.as_bytes().as_ptr(),
        value.as_bytes().as_ptr(),
        frame.body.as_ptr(),
    ] {
        assert!(range.contains(&(part as usize)), "slice of the read buffer");
    }
}

#[test]
fn v1_2_unescapes_all_four_escapes() {
    let frame = decode_frame(Version::V1_2, b"MESSAGE\na\\cb:c\\rd\\ne\\\\f\n\n\0");
    assert_eq!(headers(&frame), [("a:b", "c\rd\ne\\f")]);
}

#[test]
fn v1_1_unescapes_without_cr() {
    let frame = decode_frame(Version::V1_1, b"MESSAGE\na\\cb:d\\ne\\\\f\n\n\0");
    assert_eq!(headers(&frame), [("a:b", "d\ne\\f")]);
    let error = decode_err(Version::V1_1, Limits::default(), b"MESSAGE\na:\\r\n\n\0");
    assert_eq!(error, DecodeError::BadEscape("\\r".into()));
}

#[test]
fn v1_0_keeps_backslashes_literal() {
    let frame = decode_frame(Version::V1_0, b"MESSAGE\na\\c:b\\n\\t\\\n\n\0");
    assert_eq!(headers(&frame), [("a\\c", "b\\n\\t\\")]);
}

#[test]
fn connect_headers_are_never_unescaped() {
    for command in ["CONNECT", "STOMP", "CONNECTED"] {
        let input = format!("{command}\nlogin:a\\cb\npasscode:x\\ty:z\\\n\n\0");
        let frame = decode_frame(Version::V1_2, input.as_bytes());
        assert_eq!(
            headers(&frame),
            [("login", "a\\cb"), ("passcode", "x\\ty:z\\")],
            "{command}"
        );
    }
}

#[test]
fn escaping_round_trips_per_version() {
    let cases: [(Version, &str, &str, &[u8]); 3] = [
        (
            Version::V1_2,
            "a:b\\c",
            "1\r2\n3:4\\5",
            b"SEND\na\\cb\\\\c:1\\r2\\n3\\c4\\\\5\n\n\0",
        ),
        (
            Version::V1_1,
            "a:b\\c",
            "2\n3:4\\5",
            b"SEND\na\\cb\\\\c:2\\n3\\c4\\\\5\n\n\0",
        ),
        (
            Version::V1_0,
            "a\\c",
            "2\\n3:4",
            b"SEND\na\\c:2\\n3:4\n\n\0",
        ),
    ];
    for (version, name, value, wire) in cases {
        let frame = Frame::new(Command::Send).with_header(name, value);
        let bytes = encoded(&frame, version);
        assert_eq!(&bytes[..], wire, "{version:?}");
        assert_eq!(decode_frame(version, &bytes), frame, "{version:?}");
    }
}

#[test]
fn connected_is_encoded_unescaped() {
    let frame = Frame::new(Command::Connected)
        .with_header("version", "1.2")
        .with_header("server", "junction\\1:0");
    assert_eq!(
        &encoded(&frame, Version::V1_2)[..],
        b"CONNECTED\nversion:1.2\nserver:junction\\1:0\n\n\0"
    );
}

#[test]
fn unrepresentable_octets_cannot_inject_headers() {
    let frame = Frame::new(Command::Message).with_header("a:b\r\n", "x\ny:z\r");
    assert_eq!(
        &encoded(&frame, Version::V1_0)[..],
        b"MESSAGE\na_b  :x y:z \n\n\0"
    );
    assert_eq!(
        &encoded(&frame, Version::V1_1)[..],
        b"MESSAGE\na\\cb \\n:x\\ny\\cz \n\n\0"
    );
    let connected = Frame::new(Command::Connected).with_header("server", "a\r\nb");
    assert_eq!(
        &encoded(&connected, Version::V1_2)[..],
        b"CONNECTED\nserver:a  b\n\n\0"
    );
}

#[test]
fn encode_appends_content_length_for_a_non_empty_body() {
    let frame = Frame::new(Command::Message)
        .with_header("destination", "/a")
        .with_body(Bytes::from_static(b"x\0y"));
    let bytes = encoded(&frame, Version::V1_2);
    assert_eq!(
        &bytes[..],
        b"MESSAGE\ndestination:/a\ncontent-length:3\n\nx\0y\0"
    );
    assert_eq!(
        &encoded(&Frame::new(Command::Receipt), Version::V1_2)[..],
        b"RECEIPT\n\n\0"
    );
}

#[test]
fn encode_recomputes_a_stale_content_length_in_place() {
    let frame = Frame::new(Command::Send)
        .with_header("content-length", "99")
        .with_header("destination", "/a")
        .with_header("content-length", "1")
        .with_body(&b"abcd"[..]);
    assert_eq!(
        &encoded(&frame, Version::V1_2)[..],
        b"SEND\ncontent-length:4\ndestination:/a\n\nabcd\0"
    );
    let empty = Frame::new(Command::Send).with_header("content-length", "7");
    assert_eq!(
        &encoded(&empty, Version::V1_2)[..],
        b"SEND\ncontent-length:0\n\n\0"
    );
    let correct = Frame::new(Command::Send)
        .with_header("content-length", "004")
        .with_body(&b"abcd"[..]);
    assert_eq!(
        &encoded(&correct, Version::V1_2)[..],
        b"SEND\ncontent-length:004\n\nabcd\0",
        "a correct value is kept as written"
    );
}

#[test]
fn encode_heartbeat_is_one_lf() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(&buf[..], b"\n");
}

#[test]
fn spec_examples_round_trip() {
    for &(input, _) in SPEC_EXAMPLES {
        let frame = decode_frame(Version::V1_2, input);
        let bytes = encoded(&frame, Version::V1_2);
        let mut again = decode_frame(Version::V1_2, &bytes);
        // A body without content-length gets one appended.
        if frame.header("content-length").is_none() && !frame.body.is_empty() {
            let (name, value) = again.headers.pop().unwrap();
            assert_eq!(
                (&*name, &*value),
                ("content-length", &*frame.body.len().to_string())
            );
        }
        assert_eq!(again, frame);
    }
}

// ----- errors -----

#[test]
fn unknown_commands_are_rejected() {
    let limits = Limits::default();
    assert_eq!(
        decode_err(Version::V1_2, limits, b"send\n\n\0"),
        DecodeError::UnknownCommand("send".into())
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND \n\n\0"),
        DecodeError::UnknownCommand("SEND ".into())
    );
    // As soon as no command can start with the octets seen, before any EOL.
    assert_eq!(
        decode_err(Version::V1_2, limits, b"GET / HTTP/1.1"),
        DecodeError::UnknownCommand("GET / HTTP/1.1".into())
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"\r\r\n"),
        DecodeError::UnknownCommand("\r".into())
    );
    assert!(matches!(
        decode_err(Version::V1_2, limits, b"SENDX"),
        DecodeError::UnknownCommand(_)
    ));
}

#[test]
fn header_line_without_colon_is_rejected() {
    assert_eq!(
        decode_err(Version::V1_2, Limits::default(), b"SEND\ndestination\n\n\0"),
        DecodeError::MissingColon
    );
}

#[test]
fn empty_header_name_is_rejected() {
    assert_eq!(
        decode_err(Version::V1_2, Limits::default(), b"SEND\n:value\n\n\0"),
        DecodeError::EmptyHeaderName
    );
}

#[test]
fn bare_carriage_return_is_rejected() {
    for input in [
        &b"SEND\na\rb:c\n\n\0"[..],
        b"SEND\na:b\r\r\n\n\0",
        b"CONNECT\na:\rb\n\n\0",
    ] {
        for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
            assert_eq!(
                decode_err(version, Limits::default(), input),
                DecodeError::BareCarriageReturn
            );
        }
    }
}

#[test]
fn undefined_escapes_are_fatal() {
    let limits = Limits::default();
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\na:\\t\n\n\0"),
        DecodeError::BadEscape("\\t".into())
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\na\\:b\n\n\0"),
        DecodeError::BadEscape("\\".into()),
        "a name ending in a backslash"
    );
    assert_eq!(
        decode_err(Version::V1_1, limits, b"SEND\na:b\\\n\n\0"),
        DecodeError::BadEscape("\\".into())
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\na:\\\x01\n\n\0"),
        DecodeError::BadEscape("\\x01".into())
    );
}

#[test]
fn invalid_utf8_header_is_rejected() {
    assert_eq!(
        decode_err(Version::V1_2, Limits::default(), b"SEND\na:\xff\xfe\n\n\0"),
        DecodeError::InvalidUtf8
    );
    assert_eq!(
        decode_err(Version::V1_0, Limits::default(), b"CONNECT\n\xc3:b\n\n\0"),
        DecodeError::InvalidUtf8
    );
}

#[test]
fn invalid_utf8_command_is_an_unknown_command() {
    assert!(matches!(
        decode_err(Version::V1_2, Limits::default(), b"S\xffND\n\n\0"),
        DecodeError::UnknownCommand(_)
    ));
}

#[test]
fn non_numeric_content_length_is_rejected() {
    for value in ["abc", "", "-1", "+5", " 5", "5 ", "0x10"] {
        let input = format!("SEND\ncontent-length:{value}\n\n\0");
        assert_eq!(
            decode_err(Version::V1_2, Limits::default(), input.as_bytes()),
            DecodeError::BadContentLength(value.into()),
            "{value:?}"
        );
    }
}

#[test]
fn missing_nul_after_content_length_body_is_rejected() {
    assert_eq!(
        decode_err(
            Version::V1_2,
            Limits::default(),
            b"SEND\ncontent-length:2\n\nabc\0"
        ),
        DecodeError::MissingNul
    );
}

#[test]
fn too_many_headers_fails_one_over_the_limit() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok = b"SEND\na:1\nb:2\nc:3\n\n\0";
    assert!(Decoder::new(Version::V1_2, limits)
        .decode(&mut BytesMut::from(&ok[..]))
        .unwrap()
        .is_some());
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0"),
        DecodeError::TooManyHeaders { max: 3 }
    );
    // As soon as the first octet of the extra header arrives.
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\na:1\nb:2\nc:3\nd"),
        DecodeError::TooManyHeaders { max: 3 }
    );
    let mut partial = BytesMut::from(&b"SEND\na:1\nb:2\nc:3\n\r"[..]);
    assert_eq!(
        Decoder::new(Version::V1_2, limits).decode(&mut partial),
        Ok(None)
    );
}

#[test]
fn too_long_header_fails_one_over_the_limit() {
    let limits = Limits {
        max_headers_length: 8,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(Version::V1_2, limits);
    // name + value = 8 octets, also when 8 unescaped octets take 16 on the wire.
    for ok in [
        &b"SEND\nabcd:1234\n\n\0"[..],
        b"SEND\n\\c\\c\\c\\c:\\n\\n\\n\\n\n\n\0",
    ] {
        assert!(decoder.decode(&mut BytesMut::from(ok)).unwrap().is_some());
    }
    for over in [
        &b"SEND\nabcd:12345\n\n\0"[..],
        b"SEND\n\\c\\c\\c\\c:\\n\\n\\n\\nx\n\n\0",
    ] {
        assert_eq!(
            decode_err(Version::V1_2, limits, over),
            DecodeError::TooLongHeader { max: 8 }
        );
    }
    // Unescaped frames count octets as they are.
    assert!(Decoder::new(Version::V1_0, limits)
        .decode(&mut BytesMut::from(&b"CONNECT\nabcd:1234\n\n\0"[..]))
        .unwrap()
        .is_some());
    assert_eq!(
        decode_err(Version::V1_2, limits, b"CONNECT\nabcd:12\\c45\n\n\0"),
        DecodeError::TooLongHeader { max: 8 }
    );
}

#[test]
fn too_long_header_fails_before_its_eol() {
    let limits = Limits {
        max_headers_length: 8,
        ..Limits::default()
    };
    // Escaped frames: 17 octets could still be 8 unescaped ones plus the colon.
    let mut waiting = BytesMut::from(&b"SEND\n\\c\\c\\c\\c:\\n\\n\\n\\n\r"[..]);
    assert_eq!(
        Decoder::new(Version::V1_2, limits).decode(&mut waiting),
        Ok(None)
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\n\\c\\c\\c\\c:\\n\\n\\n\\nx"),
        DecodeError::TooLongHeader { max: 8 }
    );
    // Unescaped frames: 9 octets are the most.
    let mut waiting = BytesMut::from(&b"CONNECT\nabcd:1234"[..]);
    assert_eq!(
        Decoder::new(Version::V1_2, limits).decode(&mut waiting),
        Ok(None)
    );
    assert_eq!(
        decode_err(Version::V1_2, limits, b"CONNECT\nabcd:12345"),
        DecodeError::TooLongHeader { max: 8 }
    );
}

#[test]
fn too_long_body_with_content_length_fails_one_over_the_limit() {
    let limits = Limits {
        max_body_length: 4,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(Version::V1_2, limits);
    let frame = decoder
        .decode(&mut BytesMut::from(
            &b"SEND\ncontent-length:4\n\nabcd\0"[..],
        ))
        .unwrap();
    assert!(frame.is_some());
    // Rejected when the header line completes, before any body octet arrives.
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\ncontent-length:5\n"),
        DecodeError::TooLongBody { max: 4 }
    );
    assert_eq!(
        decode_err(
            Version::V1_2,
            limits,
            b"SEND\ncontent-length:99999999999999999999999999\n"
        ),
        DecodeError::TooLongBody { max: 4 }
    );
}

#[test]
fn too_long_body_without_content_length_fails_one_over_the_limit() {
    let limits = Limits {
        max_body_length: 4,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(Version::V1_2, limits);
    assert!(decoder
        .decode(&mut BytesMut::from(&b"SEND\n\nabcd\0"[..]))
        .unwrap()
        .is_some());
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\n\nabcde\0"),
        DecodeError::TooLongBody { max: 4 }
    );
    // Exactly the limit buffered without a NUL may still end; one more octet cannot.
    let mut waiting = BytesMut::from(&b"SEND\n\nabcd"[..]);
    assert_eq!(decoder.decode(&mut waiting), Ok(None));
    assert_eq!(
        decode_err(Version::V1_2, limits, b"SEND\n\nabcde"),
        DecodeError::TooLongBody { max: 4 }
    );
}

#[test]
fn a_huge_body_is_rejected_without_buffering_it() {
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:1073741824\n\n"[..]);
    let capacity = buf.capacity();
    assert_eq!(
        decoder(Version::V1_2).decode(&mut buf),
        Err(DecodeError::TooLongBody { max: 65536 })
    );
    assert_eq!(
        buf.capacity(),
        capacity,
        "nothing reserved for the announced body"
    );
}

#[test]
fn unlimited_limits_do_not_overflow() {
    let mut decoder = Decoder::new(Version::V1_2, Limits::UNLIMITED);
    let mut buf = BytesMut::from(&b"SEND\nabc:def\ncontent-length:3\n\nxyz\0SEND\n\nab"[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(Item::Frame(_)))));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    // A length no buffer can hold is too long even without a limit.
    let mut huge = BytesMut::from(&b"SEND\ncontent-length:18446744073709551615\n\nab"[..]);
    assert_eq!(
        decoder.decode(&mut huge),
        Err(DecodeError::TooLongBody { max: usize::MAX })
    );
}

#[test]
fn emqx_reasons_name_each_error() {
    let cases = [
        (DecodeError::TooManyHeaders { max: 1 }, "too_many_headers"),
        (DecodeError::TooLongHeader { max: 1 }, "too_long_header"),
        (DecodeError::TooLongBody { max: 1 }, "too_long_body"),
        (DecodeError::UnknownCommand("X".into()), "unknown_command"),
        (DecodeError::MissingColon, "invalid_header"),
        (DecodeError::EmptyHeaderName, "empty_header_name"),
        (
            DecodeError::BareCarriageReturn,
            "unexpected_carriage_return",
        ),
        (
            DecodeError::BadEscape("\\t".into()),
            "invalid_escape_sequence",
        ),
        (DecodeError::InvalidUtf8, "invalid_utf8"),
        (
            DecodeError::BadContentLength("x".into()),
            "invalid_content_length",
        ),
        (DecodeError::MissingNul, "missing_null_terminator"),
    ];
    for (error, reason) in cases {
        assert_eq!(error.emqx_reason(), reason);
        assert!(
            error.to_string().contains("[STOMP 1.2, "),
            "{error} cites the spec"
        );
    }
}

#[test]
fn header_returns_none_when_absent() {
    let frame = Frame::new(Command::Send).with_header("a", "1");
    assert_eq!(frame.header("a"), Some("1"));
    assert_eq!(frame.header("b"), None);
}

#[test]
fn find_byte_finds_every_position() {
    for len in 0..40 {
        for at in 0..len {
            let mut haystack = vec![b'x'; len];
            haystack[at] = 0;
            if at + 3 < len {
                haystack[at + 3] = 0;
            }
            assert_eq!(decode::find_byte(&haystack, 0), Some(at));
        }
        assert_eq!(decode::find_byte(&vec![0x80u8; len], 0), None);
        assert_eq!(decode::find_byte(&vec![0x01u8; len], 0), None);
    }
}
