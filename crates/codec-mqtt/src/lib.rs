//! Sans-IO MQTT 3.1 / 3.1.1 / 5.0 codec: bytes in, [`Packet`]s out, and back.
//!
//! Incomplete input decodes to `Ok(None)` without consuming anything; a frame is checked to
//! be whole (and within the maximum packet size) before anything is allocated for it.
//! Decoded topics, payloads and strings are zero-copy slices of the read buffer.
//!
//! One file per packet type (`connect.rs`, `publish.rs`, …); `wire.rs` holds the primitives.

mod auth;
mod connack;
mod connect;
mod disconnect;
pub mod error;
pub mod packet;
mod puback;
mod publish;
pub mod reason;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;
mod wire;

use bytes::{Buf, BytesMut};

pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use publish::{encode_publish, encoded_publish_len};
pub use wire::{FixedHeader, MAX_VARINT as MAX_REMAINING_LENGTH};

/// Stateless-ish codec for one connection.
///
/// `version` is the protocol the connection speaks (known once CONNECT has been decoded;
/// CONNECT itself is decoded whatever it is set to). `max_packet_size` bounds the total size
/// of an incoming packet, fixed header included, as MQTT 5.0 §3.1.2.11.4 defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Protocol version used for every packet but CONNECT.
    pub version: ProtocolVersion,
    /// Largest incoming packet accepted, in bytes (fixed header included).
    pub max_packet_size: u32,
}

impl Codec {
    /// A codec for `version` accepting packets of at most `max_packet_size` bytes.
    pub fn new(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Codec {
            version,
            max_packet_size,
        }
    }

    /// Checks the first byte of a packet: type and fixed header flags (§2.1.2, §2.1.3).
    fn check_first_byte(&self, byte: u8) -> Result<(), DecodeError> {
        let packet_type = byte >> 4;
        let flags = byte & 0x0F;
        let ok = match packet_type {
            0 => return Err(DecodeError::InvalidPacketType(packet_type)),
            wire::AUTH if !self.version.is_v5() => return Err(DecodeError::AuthInV3),
            wire::PUBLISH => return publish::check_flags(flags).map(|_| ()),
            wire::PUBREL | wire::SUBSCRIBE | wire::UNSUBSCRIBE => {
                // MQTT 3.1 still sets DUP on a re-sent PUBREL / SUBSCRIBE / UNSUBSCRIBE.
                let checked = match self.version {
                    ProtocolVersion::V3_1 => flags & 0b0111,
                    _ => flags,
                };
                checked == 0b0010
            }
            _ => flags == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(DecodeError::InvalidFlags { packet_type, flags })
        }
    }

    /// The fixed header at the front of `buf` once it has arrived (`Ok(None)` before),
    /// after checking the packet type, flags and size, so a reader knows how many bytes
    /// the whole packet needs before any of its body is there.
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        self.check_first_byte(first)?;
        let Some(header) = FixedHeader::parse(buf)? else {
            return Ok(None);
        };
        let size = header.packet_len();
        if size > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        Ok(Some(header))
    }

    /// Decode one packet from the front of `buf`. Ok(None) if incomplete (nothing consumed).
    /// On Ok(Some) the packet's bytes are removed from buf (use split_to + freeze so
    /// payloads/topics are zero-copy slices of the read buffer).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        if buf.len() < header.packet_len() {
            return Ok(None);
        }
        let mut body = buf.split_to(header.packet_len()).freeze();
        body.advance(header.header_len);
        let v = self.version;
        let packet = match header.packet_type {
            wire::CONNECT => Packet::Connect(Box::new(connect::decode(&body)?)),
            wire::CONNACK => Packet::ConnAck(connack::decode(v, &body)?),
            wire::PUBLISH => Packet::Publish(publish::decode(v, header.flags, &body)?),
            wire::PUBACK => Packet::PubAck(puback::decode(v, wire::PUBACK, &body)?),
            wire::PUBREC => Packet::PubRec(puback::decode(v, wire::PUBREC, &body)?),
            wire::PUBREL => Packet::PubRel(puback::decode(v, wire::PUBREL, &body)?),
            wire::PUBCOMP => Packet::PubComp(puback::decode(v, wire::PUBCOMP, &body)?),
            wire::SUBSCRIBE => Packet::Subscribe(subscribe::decode(v, &body)?),
            wire::SUBACK => Packet::SubAck(suback::decode(v, &body)?),
            wire::UNSUBSCRIBE => Packet::Unsubscribe(unsubscribe::decode(v, &body)?),
            wire::UNSUBACK => Packet::UnsubAck(unsuback::decode(v, &body)?),
            wire::PINGREQ | wire::PINGRESP => {
                if !body.is_empty() {
                    return Err(DecodeError::TrailingBytes(body.len()));
                }
                if header.packet_type == wire::PINGREQ {
                    Packet::PingReq
                } else {
                    Packet::PingResp
                }
            }
            wire::DISCONNECT => Packet::Disconnect(disconnect::decode(v, &body)?),
            wire::AUTH => Packet::Auth(auth::decode(v, &body)?),
            other => return Err(DecodeError::InvalidPacketType(other)),
        };
        Ok(Some(packet))
    }

    /// Append the encoding of `packet` (for self.version) to `buf`. CONNECT is encoded for
    /// its own `protocol`; 5.0-only fields are ignored for 3.x. Nothing is written on error.
    pub fn encode(&self, packet: &Packet, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let v = self.version;
        match packet {
            Packet::Connect(c) => connect::encode(c, buf),
            Packet::ConnAck(c) => connack::encode(v, c, buf),
            Packet::Publish(p) => encode_publish(v, p, buf),
            Packet::PubAck(a) => puback::encode(v, wire::PUBACK, a, buf),
            Packet::PubRec(a) => puback::encode(v, wire::PUBREC, a, buf),
            Packet::PubRel(a) => puback::encode(v, wire::PUBREL, a, buf),
            Packet::PubComp(a) => puback::encode(v, wire::PUBCOMP, a, buf),
            Packet::Subscribe(s) => subscribe::encode(v, s, buf),
            Packet::SubAck(s) => suback::encode(v, s, buf),
            Packet::Unsubscribe(u) => unsubscribe::encode(v, u, buf),
            Packet::UnsubAck(u) => unsuback::encode(v, u, buf),
            Packet::PingReq => wire::put_fixed_header(buf, wire::PINGREQ << 4, 0),
            Packet::PingResp => wire::put_fixed_header(buf, wire::PINGRESP << 4, 0),
            Packet::Disconnect(d) => disconnect::encode(v, d, buf),
            Packet::Auth(a) => auth::encode(v, a, buf),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Decodes exactly one packet from `bytes`, checking on the way that every strict
    /// prefix is either incomplete (nothing consumed) or fails with the same error.
    pub(crate) fn decode_one(
        version: ProtocolVersion,
        bytes: &[u8],
    ) -> Result<Packet, DecodeError> {
        let codec = Codec::new(version, u32::MAX);
        let mut buf = BytesMut::from(bytes);
        let result = codec.decode(&mut buf);
        for cut in 0..bytes.len() {
            let mut prefix = BytesMut::from(&bytes[..cut]);
            match codec.decode(&mut prefix) {
                Ok(None) => assert_eq!(prefix.len(), cut, "prefix {cut} consumed bytes"),
                Ok(Some(p)) => panic!("prefix {cut} decoded to {p:?}"),
                Err(e) => assert_eq!(Err(e), result.clone().map(|_| ()), "prefix {cut}"),
            }
        }
        let packet = result?.expect("a complete packet");
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        Ok(packet)
    }

    /// Encodes `packet` for `version`.
    pub(crate) fn encode_one(
        version: ProtocolVersion,
        packet: &Packet,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut buf = BytesMut::new();
        Codec::new(version, u32::MAX).encode(packet, &mut buf)?;
        Ok(buf.to_vec())
    }

    /// Asserts `packet` survives encode + decode for `version`.
    pub(crate) fn round_trip(version: ProtocolVersion, packet: &Packet) {
        let bytes = encode_one(version, packet).expect("encodes");
        assert_eq!(&decode_one(version, &bytes).expect("decodes"), packet);
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use bytes::Bytes;

    #[test]
    fn incomplete_input_is_none_and_consumes_nothing() {
        let codec = Codec::new(ProtocolVersion::V3_1_1, 1024);
        let mut buf = BytesMut::from(&[0x30, 0x05, 0x00, 0x01][..]);
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 4);
        buf.extend_from_slice(b"txy");
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(Packet::Publish(_)))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn packets_are_taken_one_at_a_time_from_a_shared_buffer() {
        let codec = Codec::new(ProtocolVersion::V3_1_1, 1024);
        let mut buf = BytesMut::from(&[0xC0, 0x00, 0xD0, 0x00, 0xE0][..]);
        assert_eq!(codec.decode(&mut buf), Ok(Some(Packet::PingReq)));
        assert_eq!(codec.decode(&mut buf), Ok(Some(Packet::PingResp)));
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], &[0xE0]);
    }

    #[test]
    fn packet_too_large_is_detected_from_the_fixed_header_alone() {
        let codec = Codec::new(ProtocolVersion::V5, 100);
        // PUBLISH announcing 200 bytes, none of the body present.
        let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            DecodeError::PacketTooLarge {
                size: 203,
                max: 100
            }
        );
        assert_eq!(err.reason_code(), reason::PACKET_TOO_LARGE);
        // The limit counts the whole packet: 98 bytes of body + 2 of header fit.
        let mut buf = BytesMut::from(&[0x30, 0x62][..]);
        assert_eq!(codec.decode(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&[0x30, 0x63][..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn remaining_length_over_four_bytes_is_malformed() {
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        let err = Codec::new(ProtocolVersion::V5, u32::MAX)
            .decode(&mut buf)
            .unwrap_err();
        assert_eq!(err, DecodeError::MalformedRemainingLength);
        assert_eq!(err.reason_code(), reason::MALFORMED_PACKET);
    }

    #[test]
    fn packet_type_0_is_rejected_from_the_first_byte() {
        let mut buf = BytesMut::from(&[0x00][..]);
        assert_eq!(
            Codec::new(ProtocolVersion::V5, 1024).decode(&mut buf),
            Err(DecodeError::InvalidPacketType(0))
        );
    }

    #[test]
    fn ping_packets_are_empty_with_zero_flags() {
        for version in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            assert_eq!(decode_one(version, &[0xC0, 0x00]), Ok(Packet::PingReq));
            assert_eq!(decode_one(version, &[0xD0, 0x00]), Ok(Packet::PingResp));
            assert_eq!(
                encode_one(version, &Packet::PingReq).unwrap(),
                vec![0xC0, 0x00]
            );
            assert_eq!(
                encode_one(version, &Packet::PingResp).unwrap(),
                vec![0xD0, 0x00]
            );
            assert_eq!(
                decode_one(version, &[0xC0, 0x01, 0x00]),
                Err(DecodeError::TrailingBytes(1))
            );
            assert_eq!(
                decode_one(version, &[0xC1, 0x00]),
                Err(DecodeError::InvalidFlags {
                    packet_type: 12,
                    flags: 1
                })
            );
        }
    }

    #[test]
    fn mqtt_3_1_tolerates_dup_on_resent_subscribe_but_3_1_1_does_not() {
        let bytes = [0x8A, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x01];
        assert!(matches!(
            decode_one(ProtocolVersion::V3_1, &bytes),
            Ok(Packet::Subscribe(_))
        ));
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &bytes),
            Err(DecodeError::InvalidFlags {
                packet_type: 8,
                flags: 0x0A
            })
        );
    }

    #[test]
    fn connect_is_decoded_whatever_the_codec_version() {
        let bytes = [
            0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00,
            0x00,
        ];
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            let Ok(Packet::Connect(c)) = decode_one(version, &bytes) else {
                panic!("not a connect");
            };
            assert_eq!(c.protocol, ProtocolVersion::V5);
        }
    }

    #[test]
    fn encode_errors_leave_the_buffer_untouched() {
        let mut buf = BytesMut::from(&b"kept"[..]);
        assert_eq!(
            wire::put_fixed_header(&mut buf, 0x30, MAX_REMAINING_LENGTH + 1),
            Err(EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 1))
        );
        let sub = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("a".into(), SubscriptionOptions::default())],
            subscription_identifier: Some(1 << 28),
            user_properties: vec![],
        });
        assert_eq!(
            Codec::new(ProtocolVersion::V5, 0).encode(&sub, &mut buf),
            Err(EncodeError::VarintTooLarge(1 << 28))
        );
        let long = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: Bytes::new(),
            properties: PublishProperties {
                user_properties: vec![("k".into(), "v".repeat(65_536).into())],
                ..PublishProperties::default()
            },
        });
        assert_eq!(
            Codec::new(ProtocolVersion::V5, 0).encode(&long, &mut buf),
            Err(EncodeError::StringTooLong(65_536))
        );
        assert_eq!(&buf[..], b"kept");
    }

    #[test]
    fn every_decode_error_cites_the_spec_and_maps_to_a_reason_code() {
        let all = [
            DecodeError::MalformedRemainingLength,
            DecodeError::PacketTooLarge { size: 2, max: 1 },
            DecodeError::InvalidPacketType(0),
            DecodeError::InvalidFlags {
                packet_type: 8,
                flags: 0,
            },
            DecodeError::InvalidQoS,
            DecodeError::DupOnQoS0,
            DecodeError::InvalidUtf8,
            DecodeError::NullCharacter,
            DecodeError::WildcardInTopicName,
            DecodeError::EmptyTopicName,
            DecodeError::ZeroPacketId,
            DecodeError::UnknownProperty(0x7F),
            DecodeError::DuplicateProperty(0x11),
            DecodeError::PropertyNotAllowed {
                property: 0x11,
                packet: "PUBLISH",
            },
            DecodeError::InvalidPropertyValue(0x21),
            DecodeError::ZeroTopicAlias,
            DecodeError::AuthDataWithoutMethod,
            DecodeError::Truncated,
            DecodeError::TrailingBytes(1),
            DecodeError::InvalidProtocolName { level: None },
            DecodeError::UnsupportedProtocolVersion { level: 9 },
            DecodeError::ReservedConnectFlag,
            DecodeError::InvalidWillFlags,
            DecodeError::PasswordWithoutUsername,
            DecodeError::InvalidConnAckFlags,
            DecodeError::InvalidReasonCode(9),
            DecodeError::NoSubscribeFilters,
            DecodeError::ReservedSubscriptionOptionBits(0xC0),
            DecodeError::InvalidSubscriptionQoS,
            DecodeError::InvalidRetainHandling,
            DecodeError::NoUnsubscribeFilters,
            DecodeError::AuthInV3,
        ];
        for err in &all {
            let message = err.to_string();
            assert!(
                message.contains("[MQTT"),
                "{err:?} does not cite the spec: {message}"
            );
            assert!(
                matches!(err.reason_code(), 0x81 | 0x82 | 0x84 | 0x90 | 0x94 | 0x95),
                "{err:?}"
            );
            assert_eq!(
                err.connack_version().is_some(),
                err.reason_code() == reason::UNSUPPORTED_PROTOCOL_VERSION
            );
        }
    }
}
