//! PUBLISH (MQTT 5.0 §3.3, MQTT 3.1.1 §3.3) — the hot path.
//!
//! Decoding hands out the topic and payload as zero-copy slices of the read buffer; encoding
//! sizes the packet first, reserves once, and writes straight into the output buffer.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use junction_types::QoS;

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ProtocolVersion, Publish, PublishProperties};
use crate::wire::{
    self, field_len, flag_value, not_allowed, opt_bin, opt_str, prop, props, put_field,
    read_properties, subscription_identifier, PropertySet, Reader,
};

const FLAG_RETAIN: u8 = 0x01;
const FLAG_DUP: u8 = 0x08;

const PROPERTIES: PropertySet = PropertySet {
    packet: "PUBLISH",
    allowed: prop::mask(&[
        prop::PAYLOAD_FORMAT_INDICATOR,
        prop::MESSAGE_EXPIRY_INTERVAL,
        prop::TOPIC_ALIAS,
        prop::RESPONSE_TOPIC,
        prop::CORRELATION_DATA,
        prop::USER_PROPERTY,
        prop::SUBSCRIPTION_IDENTIFIER,
        prop::CONTENT_TYPE,
    ]),
    // A server-to-client PUBLISH carries one Subscription Identifier per matching
    // subscription (§3.3.2.3.8).
    repeatable: prop::mask(&[prop::USER_PROPERTY, prop::SUBSCRIPTION_IDENTIFIER]),
};

/// Checks the fixed header flags of a PUBLISH and splits them into (dup, qos, retain).
#[inline]
pub(crate) fn check_flags(flags: u8) -> Result<(bool, QoS, bool), DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & FLAG_DUP != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupOnQoS0);
    }
    Ok((dup, qos, flags & FLAG_RETAIN != 0))
}

/// Reads a topic name: one pass rejects U+0000 [MQTT-1.5.4-2] and wildcards
/// [MQTT-3.3.2-2], then the UTF-8 check [MQTT-1.5.4-1].
#[inline]
fn topic_name(r: &mut Reader<'_>) -> Result<ByteString, DecodeError> {
    let raw = r.binary()?;
    for &b in raw.iter() {
        match b {
            0 => return Err(DecodeError::NullCharacter),
            b'+' | b'#' => return Err(DecodeError::WildcardInTopicName),
            _ => {}
        }
    }
    ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)
}

/// Decodes a PUBLISH body with the given fixed header flags.
pub(crate) fn decode(
    version: ProtocolVersion,
    flags: u8,
    body: &Bytes,
) -> Result<Publish, DecodeError> {
    let (dup, qos, retain) = check_flags(flags)?;
    let mut r = Reader::new(body);
    let topic = topic_name(&mut r)?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.packet_id()?),
    };
    let mut properties = PublishProperties::default();
    if version.is_v5() {
        read_properties(&mut r, &PROPERTIES, |id, r| {
            let p = &mut properties;
            match id {
                prop::PAYLOAD_FORMAT_INDICATOR => {
                    p.payload_format_indicator = Some(flag_value(id, r)?)
                }
                prop::MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
                prop::TOPIC_ALIAS => match r.u16()? {
                    0 => return Err(DecodeError::ZeroTopicAlias),
                    alias => p.topic_alias = Some(alias),
                },
                prop::RESPONSE_TOPIC => p.response_topic = Some(r.string()?),
                prop::CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
                prop::USER_PROPERTY => p.user_properties.push(r.string_pair()?),
                prop::SUBSCRIPTION_IDENTIFIER => {
                    p.subscription_identifiers.push(subscription_identifier(r)?)
                }
                prop::CONTENT_TYPE => p.content_type = Some(r.string()?),
                _ => return Err(not_allowed(id, &PROPERTIES)),
            }
            Ok(())
        })?;
    }
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::EmptyTopicName);
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
        properties,
    })
}

impl PublishProperties {
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        let mut len = props::len_u8(self.payload_format_indicator)
            + props::len_u32(self.message_expiry_interval)
            + props::len_u16(self.topic_alias)
            + props::len_field(opt_str(&self.response_topic))?
            + props::len_field(opt_bin(&self.correlation_data))?
            + props::len_user(&self.user_properties)?
            + props::len_field(opt_str(&self.content_type))?;
        for &id in &self.subscription_identifiers {
            len += props::len_varint(Some(id))?;
        }
        Ok(len)
    }

    fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_u8(
            buf,
            prop::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        props::put_u32(
            buf,
            prop::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        props::put_u16(buf, prop::TOPIC_ALIAS, self.topic_alias);
        props::put_field(buf, prop::RESPONSE_TOPIC, opt_str(&self.response_topic));
        props::put_field(buf, prop::CORRELATION_DATA, opt_bin(&self.correlation_data));
        props::put_field(buf, prop::CONTENT_TYPE, opt_str(&self.content_type));
        for &id in &self.subscription_identifiers {
            props::put_varint(buf, prop::SUBSCRIPTION_IDENTIFIER, Some(id));
        }
        props::put_user(buf, &self.user_properties);
    }
}

/// The Remaining Length of `p` encoded for `version`, and the size of its property block
/// contents (0 for 3.x).
#[inline]
fn remaining_len(version: ProtocolVersion, p: &Publish) -> Result<(usize, usize), EncodeError> {
    let mut remaining = field_len(p.topic.as_bytes())? + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        remaining += 2;
    }
    let mut props_len = 0;
    if version.is_v5() {
        props_len = p.properties.encoded_len()?;
        remaining += props::block_len(props_len)?;
    }
    if remaining > wire::MAX_VARINT {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    Ok((remaining, props_len))
}

/// Total size in bytes of `p` encoded for `version` (fixed header included), to check it
/// against the peer's Maximum Packet Size before sending.
pub fn encoded_publish_len(version: ProtocolVersion, p: &Publish) -> Result<usize, EncodeError> {
    let (remaining, _) = remaining_len(version, p)?;
    Ok(1 + wire::varint_len(remaining) + remaining)
}

/// Encode a PUBLISH straight into buf (hot path, no intermediate allocation): the packet is
/// sized first and `buf` grows once. For 3.x the properties are ignored; DUP is only written
/// for QoS > 0 ([MQTT-3.3.1-2]).
pub fn encode_publish(
    version: ProtocolVersion,
    p: &Publish,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let packet_id = match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, _) => None,
        (_, Some(id)) => Some(id),
        (_, None) => return Err(EncodeError::MissingPacketId),
    };
    let (remaining, props_len) = remaining_len(version, p)?;
    let mut first = (wire::PUBLISH << 4) | (p.qos.as_u8() << 1);
    if p.dup && packet_id.is_some() {
        first |= FLAG_DUP;
    }
    if p.retain {
        first |= FLAG_RETAIN;
    }
    wire::put_fixed_header(buf, first, remaining)?;
    put_field(buf, p.topic.as_bytes());
    if let Some(id) = packet_id {
        buf.put_u16(id);
    }
    if version.is_v5() {
        p.properties.write(props_len, buf);
    }
    buf.put_slice(&p.payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::{Codec, Packet};

    fn publish(qos: QoS, topic: &'static str, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteString::from_static(topic),
            packet_id: (qos != QoS::AtMostOnce).then_some(10),
            payload: Bytes::from_static(payload),
            properties: PublishProperties::default(),
        }
    }

    #[test]
    fn v3_qos0_publish_decodes_and_encodes_byte_for_byte() {
        // mosquitto_pub -t a/b -m hello (3.1.1).
        let bytes = [
            0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
        ];
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            let packet = decode_one(version, &bytes).unwrap();
            assert_eq!(
                packet,
                Packet::Publish(publish(QoS::AtMostOnce, "a/b", b"hello"))
            );
            assert_eq!(encode_one(version, &packet).unwrap(), bytes.to_vec());
        }
    }

    #[test]
    fn v3_qos1_retained_dup_publish_carries_a_packet_id() {
        let bytes = [0x3B, 0x07, 0x00, 0x01, b't', 0x00, 0x0A, b'h', b'i'];
        let packet = decode_one(ProtocolVersion::V3_1_1, &bytes).unwrap();
        let mut want = publish(QoS::AtLeastOnce, "t", b"hi");
        want.dup = true;
        want.retain = true;
        assert_eq!(packet, Packet::Publish(want));
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v5_qos2_publish_with_properties() {
        // Properties: payload format 1, message expiry 60, topic alias 3, 2 sub ids, user prop.
        let bytes = [
            0x34, 0x1D, 0x00, 0x01, b't', 0x00, 0x0B, // topic, packet id 11
            0x16, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3C, 0x23, 0x00, 0x03, 0x0B, 0x01, 0x0B,
            0x80, 0x01, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // properties
            b'x', // payload
        ];
        let Packet::Publish(p) = decode_one(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not a publish");
        };
        assert_eq!(p.qos, QoS::ExactlyOnce);
        assert_eq!(p.packet_id, Some(11));
        assert_eq!(p.properties.payload_format_indicator, Some(1));
        assert_eq!(p.properties.message_expiry_interval, Some(60));
        assert_eq!(p.properties.topic_alias, Some(3));
        assert_eq!(p.properties.subscription_identifiers, vec![1, 128]);
        assert_eq!(p.properties.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(&p.payload[..], b"x");
        assert_eq!(
            encode_one(ProtocolVersion::V5, &Packet::Publish(p)).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn payload_and_topic_are_zero_copy_slices_of_the_read_buffer() {
        let mut buf = BytesMut::from(&[0x30, 0x06, 0x00, 0x01, b't', b'a', b'b', b'c'][..]);
        let base = buf.as_ptr() as usize;
        let Some(Packet::Publish(p)) = Codec::new(ProtocolVersion::V3_1_1, 1024)
            .decode(&mut buf)
            .unwrap()
        else {
            panic!("not a publish");
        };
        assert_eq!(p.topic.as_bytes().as_ptr() as usize, base + 4);
        assert_eq!(p.payload.as_ptr() as usize, base + 5);
    }

    #[test]
    fn qos_3_and_dup_on_qos_0_are_malformed() {
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x36, 0x03, 0x00, 0x01, b't']),
            Err(DecodeError::InvalidQoS)
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x38, 0x03, 0x00, 0x01, b't']),
            Err(DecodeError::DupOnQoS0)
        );
    }

    #[test]
    fn wildcards_in_topic_names_are_rejected() {
        for topic in [b'+', b'#'] {
            let err = decode_one(ProtocolVersion::V5, &[0x30, 0x04, 0x00, 0x01, topic, 0x00])
                .unwrap_err();
            assert_eq!(err, DecodeError::WildcardInTopicName);
            assert_eq!(err.reason_code(), crate::reason::TOPIC_NAME_INVALID);
        }
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x30, 0x03, 0x00, 0x01, 0x00]),
            Err(DecodeError::NullCharacter)
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x30, 0x03, 0x00, 0x01, 0xFF]),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn empty_topic_needs_a_topic_alias_in_v5_and_is_invalid_in_v3() {
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x30, 0x02, 0x00, 0x00]),
            Err(DecodeError::EmptyTopicName)
        );
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x30, 0x03, 0x00, 0x00, 0x00]),
            Err(DecodeError::EmptyTopicName)
        );
        let Packet::Publish(p) = decode_one(
            ProtocolVersion::V5,
            &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07],
        )
        .unwrap() else {
            panic!("not a publish");
        };
        assert_eq!((p.topic.len(), p.properties.topic_alias), (0, Some(7)));
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00]
            ),
            Err(DecodeError::ZeroTopicAlias)
        );
    }

    #[test]
    fn v5_publish_property_rules() {
        // Subscription identifier 0.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x0B, 0x00]
            ),
            Err(DecodeError::InvalidPropertyValue(0x0B))
        );
        // Duplicate topic alias.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x30, 0x0A, 0x00, 0x01, b't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02]
            ),
            Err(DecodeError::DuplicateProperty(0x23))
        );
        // Unknown property 0x7F and a two-byte identifier.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x7F, 0x00]
            ),
            Err(DecodeError::UnknownProperty(0x7F))
        );
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x80, 0x01]
            ),
            Err(DecodeError::UnknownProperty(0x80))
        );
        // Property length past the end of the packet.
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x30, 0x04, 0x00, 0x01, b't', 0x05]),
            Err(DecodeError::Truncated)
        );
        // QoS 1 without room for the packet id; packet id 0.
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x32, 0x03, 0x00, 0x01, b't']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_one(
                ProtocolVersion::V3_1_1,
                &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00]
            ),
            Err(DecodeError::ZeroPacketId)
        );
    }

    #[test]
    fn v3_encoding_drops_v5_properties() {
        let mut p = publish(QoS::AtMostOnce, "t", b"x");
        p.properties.user_properties.push(("k".into(), "v".into()));
        p.properties.message_expiry_interval = Some(5);
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &Packet::Publish(p)).unwrap(),
            vec![0x30, 0x04, 0x00, 0x01, b't', b'x']
        );
    }

    #[test]
    fn encoding_rejects_missing_packet_id_and_oversized_topics() {
        let mut p = publish(QoS::AtLeastOnce, "t", b"");
        p.packet_id = None;
        let mut buf = BytesMut::new();
        assert_eq!(
            encode_publish(ProtocolVersion::V5, &p, &mut buf),
            Err(EncodeError::MissingPacketId)
        );
        let mut p = publish(QoS::AtMostOnce, "t", b"");
        p.topic = ByteString::from("a".repeat(70_000));
        assert_eq!(
            encode_publish(ProtocolVersion::V5, &p, &mut buf),
            Err(EncodeError::StringTooLong(70_000))
        );
        assert!(buf.is_empty(), "nothing written on error");
    }

    #[test]
    fn encoded_len_matches_the_bytes_written_and_reserve_happens_once() {
        let mut p = publish(QoS::ExactlyOnce, "sensors/1", &[7u8; 300]);
        p.properties.subscription_identifiers = vec![1, 300, 70_000];
        p.properties.content_type = Some("bin".into());
        let mut buf = BytesMut::new();
        encode_publish(ProtocolVersion::V5, &p, &mut buf).unwrap();
        assert_eq!(
            encoded_publish_len(ProtocolVersion::V5, &p).unwrap(),
            buf.len()
        );
        round_trip(ProtocolVersion::V5, &Packet::Publish(p));
    }
}
