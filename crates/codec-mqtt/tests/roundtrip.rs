//! Property tests: every packet valid for a version survives encode → decode unchanged, and
//! decoding arbitrary or mutated bytes never panics (and whatever decodes re-encodes to the
//! same packet).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_codec_mqtt::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop::sample::select(VERSIONS.to_vec())
}

fn string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,12}".prop_map(ByteString::from)
}

fn topic_name() -> impl Strategy<Value = ByteString> {
    "[^\u{0}+#]{1,12}".prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((string(), string()), 0..3)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    of(0..=1u8)
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        flag(),
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(string()),
        of(binary()),
        user_properties(),
        vec(1..=MAX_REMAINING_LENGTH as u32, 0..3),
        of(string()),
    )
        .prop_map(
            |(pfi, expiry, alias, response, correlation, user, ids, content)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                topic_alias: alias,
                response_topic: response,
                correlation_data: correlation,
                user_properties: user,
                subscription_identifiers: ids,
                content_type: content,
            },
        )
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        binary(),
        publish_properties(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, empty_topic, id, payload, properties)| {
                let properties = if version.is_v5() {
                    properties
                } else {
                    PublishProperties::default()
                };
                let aliased = properties.topic_alias.is_some();
                Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: if empty_topic && aliased {
                        ByteString::new()
                    } else {
                        topic
                    },
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    payload,
                    properties,
                }
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        of(any::<u32>()),
        flag(),
        of(any::<u32>()),
        of(string()),
        of(topic_name()),
        of(binary()),
        user_properties(),
    )
        .prop_map(
            |(delay, pfi, expiry, content, response, correlation, user)| WillProperties {
                delay_interval: delay,
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                content_type: content,
                response_topic: response,
                correlation_data: correlation,
                user_properties: user,
            },
        )
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(1..=u32::MAX),
        of(any::<u16>()),
        flag(),
        flag(),
        user_properties(),
        of(string()),
        of(binary()),
    )
        .prop_map(
            |(expiry, receive_max, max_size, alias_max, rri, rpi, user, method, data)| {
                ConnectProperties {
                    session_expiry_interval: expiry,
                    receive_maximum: receive_max,
                    maximum_packet_size: max_size,
                    topic_alias_maximum: alias_max,
                    request_response_information: rri,
                    request_problem_information: rpi,
                    user_properties: user,
                    // Authentication Data only comes with a method (§3.1.2.11.10).
                    authentication_data: method.as_ref().and(data),
                    authentication_method: method,
                }
            },
        )
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Connect> {
    let will = (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        will_properties(),
    )
        .prop_map(move |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: if version.is_v5() {
                properties
            } else {
                WillProperties::default()
            },
        });
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(will),
        of(string()),
        of(binary()),
        connect_properties(),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    // 3.x needs a user name for a password [MQTT-3.1.2-22].
                    password: if version.is_v5() || username.is_some() {
                        password
                    } else {
                        None
                    },
                    username,
                    properties: if version.is_v5() {
                        properties
                    } else {
                        ConnectProperties::default()
                    },
                }
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = ConnAck> {
    let props = (
        (
            of(any::<u32>()),
            of(1..=u16::MAX),
            flag(),
            of(any::<bool>()),
            of(1..=u32::MAX),
            of(string()),
            of(any::<u16>()),
            of(string()),
            user_properties(),
        ),
        (
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<u16>()),
            of(string()),
            of(string()),
            of(string()),
            of(binary()),
        ),
    )
        .prop_map(
            |(
                (expiry, receive_max, max_qos, retain, max_size, assigned, alias_max, reason, user),
                (wildcard, sub_ids, shared, keep_alive, response, reference, method, data),
            )| ConnAckProperties {
                session_expiry_interval: expiry,
                receive_maximum: receive_max,
                maximum_qos: max_qos,
                retain_available: retain,
                maximum_packet_size: max_size,
                assigned_client_identifier: assigned,
                topic_alias_maximum: alias_max,
                reason_string: reason,
                user_properties: user,
                wildcard_subscription_available: wildcard,
                subscription_identifiers_available: sub_ids,
                shared_subscription_available: shared,
                server_keep_alive: keep_alive,
                response_information: response,
                server_reference: reference,
                authentication_method: method,
                authentication_data: data,
            },
        );
    (any::<bool>(), any::<u8>(), props).prop_map(move |(session_present, code, properties)| {
        match version {
            ProtocolVersion::V5 => ConnAck {
                session_present,
                reason_code: code,
                properties,
            },
            _ => ConnAck {
                session_present: session_present && version == ProtocolVersion::V3_1_1,
                reason_code: code % 6,
                properties: ConnAckProperties::default(),
            },
        }
    })
}

fn ack_properties(version: ProtocolVersion) -> impl Strategy<Value = AckProperties> {
    (of(string()), user_properties()).prop_map(move |(reason_string, user_properties)| {
        if version.is_v5() {
            AckProperties {
                reason_string,
                user_properties,
            }
        } else {
            AckProperties::default()
        }
    })
}

fn pub_ack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (0..4u8, packet_id(), any::<u8>(), ack_properties(version)).prop_map(
        move |(kind, packet_id, code, properties)| {
            let ack = PubAck {
                packet_id,
                reason_code: if version.is_v5() { code } else { 0 },
                properties,
            };
            match kind {
                0 => Packet::PubAck(ack),
                1 => Packet::PubRec(ack),
                2 => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    let options = (qos(), any::<bool>(), any::<bool>(), 0..=2u8).prop_map(
        move |(qos, no_local, retain_as_published, retain_handling)| {
            if version.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                }
            } else {
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                }
            }
        },
    );
    (
        packet_id(),
        vec((string(), options), 1..4),
        of(1..=MAX_REMAINING_LENGTH as u32),
        user_properties(),
    )
        .prop_map(move |(packet_id, filters, id, user)| Subscribe {
            packet_id,
            filters,
            subscription_identifier: if version.is_v5() { id } else { None },
            user_properties: if version.is_v5() { user } else { vec![] },
        })
}

fn sub_ack(version: ProtocolVersion) -> impl Strategy<Value = SubAck> {
    let code = if version.is_v5() {
        any::<u8>().boxed()
    } else {
        prop::sample::select(vec![0u8, 1, 2, 0x80]).boxed()
    };
    (packet_id(), vec(code, 1..5), ack_properties(version)).prop_map(
        |(packet_id, reason_codes, properties)| SubAck {
            packet_id,
            reason_codes,
            properties,
        },
    )
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Unsubscribe> {
    (packet_id(), vec(string(), 1..4), user_properties()).prop_map(
        move |(packet_id, filters, user)| Unsubscribe {
            packet_id,
            filters,
            user_properties: if version.is_v5() { user } else { vec![] },
        },
    )
}

fn unsub_ack(version: ProtocolVersion) -> impl Strategy<Value = UnsubAck> {
    (packet_id(), vec(any::<u8>(), 1..5), ack_properties(version)).prop_map(
        move |(packet_id, codes, properties)| UnsubAck {
            packet_id,
            reason_codes: if version.is_v5() { codes } else { vec![] },
            properties,
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Disconnect> {
    (
        any::<u8>(),
        of(any::<u32>()),
        of(string()),
        user_properties(),
        of(string()),
    )
        .prop_map(move |(code, expiry, reason, user, reference)| {
            if version.is_v5() {
                Disconnect {
                    reason_code: code,
                    properties: DisconnectProperties {
                        session_expiry_interval: expiry,
                        reason_string: reason,
                        user_properties: user,
                        server_reference: reference,
                    },
                }
            } else {
                Disconnect::default()
            }
        })
}

fn auth() -> impl Strategy<Value = Auth> {
    (
        any::<u8>(),
        of(string()),
        of(binary()),
        of(string()),
        user_properties(),
    )
        .prop_map(|(code, method, data, reason, user)| Auth {
            reason_code: code,
            properties: AuthProperties {
                authentication_method: method,
                authentication_data: data,
                reason_string: reason,
                user_properties: user,
            },
        })
}

/// Any packet valid for `version`.
fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut options = vec![
        connect(version)
            .prop_map(|c| Packet::Connect(Box::new(c)))
            .boxed(),
        connack(version).prop_map(Packet::ConnAck).boxed(),
        publish(version).prop_map(Packet::Publish).boxed(),
        pub_ack(version).boxed(),
        subscribe(version).prop_map(Packet::Subscribe).boxed(),
        sub_ack(version).prop_map(Packet::SubAck).boxed(),
        unsubscribe(version).prop_map(Packet::Unsubscribe).boxed(),
        unsub_ack(version).prop_map(Packet::UnsubAck).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(version).prop_map(Packet::Disconnect).boxed(),
    ];
    if version.is_v5() {
        options.push(auth().prop_map(Packet::Auth).boxed());
    }
    prop::strategy::Union::new(options).boxed()
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

/// Encodes `packet` for `version` and decodes it back.
fn encode_decode(version: ProtocolVersion, packet: &Packet) -> (Packet, usize) {
    let codec = Codec::new(version, u32::MAX);
    let mut buf = BytesMut::new();
    codec
        .encode(packet, &mut buf)
        .expect("valid packet encodes");
    let len = buf.len();
    let decoded = codec
        .decode(&mut buf)
        .expect("own encoding decodes")
        .expect("own encoding is complete");
    assert!(buf.is_empty(), "decode left {} bytes", buf.len());
    (decoded, len)
}

/// Decodes everything in `bytes` with `version`; every packet that decodes must re-encode
/// and decode to itself. Never panics on its own.
fn decode_all_and_recheck(version: ProtocolVersion, bytes: &[u8]) {
    let codec = Codec::new(version, 1 << 20);
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(packet)) = codec.decode(&mut buf) {
        let (again, _) = encode_decode(version, &packet);
        assert_eq!(again, packet);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn publish_round_trips_in_every_version(
        (v, p) in version().prop_flat_map(|v| publish(v).prop_map(move |p| (v, p)))
    ) {
        let packet = Packet::Publish(p.clone());
        let (decoded, len) = encode_decode(v, &packet);
        prop_assert_eq!(decoded, packet);
        prop_assert_eq!(encoded_publish_len(v, &p).unwrap(), len);
    }

    #[test]
    fn connect_round_trips_in_every_version(
        c in version().prop_flat_map(connect)
    ) {
        let packet = Packet::Connect(Box::new(c));
        // CONNECT is self-describing: the codec's own version does not matter.
        for codec_version in VERSIONS {
            let (decoded, _) = encode_decode(codec_version, &packet);
            prop_assert_eq!(&decoded, &packet);
        }
    }

    #[test]
    fn subscribe_round_trips_in_every_version(
        (v, s) in version().prop_flat_map(|v| subscribe(v).prop_map(move |s| (v, s)))
    ) {
        let packet = Packet::Subscribe(s);
        prop_assert_eq!(encode_decode(v, &packet).0, packet);
    }

    #[test]
    fn acks_round_trip_in_every_version(
        (v, p) in version().prop_flat_map(|v| prop_oneof![
            pub_ack(v),
            connack(v).prop_map(Packet::ConnAck),
            sub_ack(v).prop_map(Packet::SubAck),
            unsub_ack(v).prop_map(Packet::UnsubAck),
        ].prop_map(move |p| (v, p)))
    ) {
        prop_assert_eq!(encode_decode(v, &p).0, p);
    }

    #[test]
    fn disconnect_and_auth_round_trip(
        (v, p) in version().prop_flat_map(|v| {
            let d = disconnect(v).prop_map(Packet::Disconnect);
            if v.is_v5() {
                prop_oneof![d, auth().prop_map(Packet::Auth)].prop_map(move |p| (v, p)).boxed()
            } else {
                d.prop_map(move |p| (v, p)).boxed()
            }
        })
    ) {
        prop_assert_eq!(encode_decode(v, &p).0, p);
    }

    #[test]
    fn any_valid_packet_round_trips((v, p) in versioned_packet()) {
        prop_assert_eq!(encode_decode(v, &p).0, p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        for v in VERSIONS {
            decode_all_and_recheck(v, &bytes);
        }
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        (v, p) in versioned_packet(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = BytesMut::new();
        Codec::new(v, u32::MAX).encode(&p, &mut buf).unwrap();
        let mut bytes = buf.to_vec();
        let i = position.index(bytes.len());
        bytes[i] = byte;
        for version in VERSIONS {
            decode_all_and_recheck(version, &bytes);
            decode_all_and_recheck(version, &bytes[..cut.index(bytes.len() + 1)]);
        }
    }
}
