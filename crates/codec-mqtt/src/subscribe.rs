//! SUBSCRIBE (MQTT 5.0 §3.8, MQTT 3.1.1 §3.8).
//!
//! Topic filter syntax (wildcard placement, shared subscriptions) is the broker's call: it
//! answers a bad filter with a per-filter SUBACK code rather than a disconnect.

use bytes::{BufMut, Bytes, BytesMut};
use junction_types::QoS;

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ProtocolVersion, Subscribe, SubscriptionOptions};
use crate::wire::{
    self, field_len, not_allowed, prop, props, put_field, read_properties, subscription_identifier,
    PropertySet, Reader,
};

const PROPERTIES: PropertySet = PropertySet {
    packet: "SUBSCRIBE",
    allowed: prop::mask(&[prop::SUBSCRIPTION_IDENTIFIER, prop::USER_PROPERTY]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

const OPT_QOS: u8 = 0x03;
const OPT_NO_LOCAL: u8 = 0x04;
const OPT_RETAIN_AS_PUBLISHED: u8 = 0x08;
const OPT_RETAIN_HANDLING_SHIFT: u8 = 4;
/// Bits that must be 0: 6–7 in 5.0 [MQTT-3.8.3-5], 2–7 in 3.x [MQTT-3.8.3-4 (3.1.1)].
const RESERVED_V5: u8 = 0xC0;
const RESERVED_V3: u8 = 0xFC;

impl SubscriptionOptions {
    /// Parses a subscription options byte for `version`.
    pub fn from_byte(version: ProtocolVersion, byte: u8) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() {
            RESERVED_V5
        } else {
            RESERVED_V3
        };
        if byte & reserved != 0 {
            return Err(DecodeError::ReservedSubscriptionOptionBits(byte));
        }
        let qos = QoS::from_u8(byte & OPT_QOS).ok_or(DecodeError::InvalidSubscriptionQoS)?;
        let retain_handling = byte >> OPT_RETAIN_HANDLING_SHIFT;
        if retain_handling == 3 {
            return Err(DecodeError::InvalidRetainHandling);
        }
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & OPT_NO_LOCAL != 0,
            retain_as_published: byte & OPT_RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    /// The options byte for `version` (just the QoS for 3.x).
    pub fn to_byte(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos.as_u8();
        if version.is_v5() {
            if self.no_local {
                byte |= OPT_NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= OPT_RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling & 0x03) << OPT_RETAIN_HANDLING_SHIFT;
        }
        byte
    }
}

/// Decodes a SUBSCRIBE body.
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<Subscribe, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let mut subscription_identifier_value = None;
    let mut user_properties = Vec::new();
    if version.is_v5() {
        read_properties(&mut r, &PROPERTIES, |id, r| {
            match id {
                prop::SUBSCRIPTION_IDENTIFIER => {
                    subscription_identifier_value = Some(subscription_identifier(r)?)
                }
                prop::USER_PROPERTY => user_properties.push(r.string_pair()?),
                _ => return Err(not_allowed(id, &PROPERTIES)),
            }
            Ok(())
        })?;
    }
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = SubscriptionOptions::from_byte(version, r.u8()?)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        subscription_identifier: subscription_identifier_value,
        user_properties,
    })
}

/// Appends a SUBSCRIBE for `version` (3.x: no properties, options byte is the QoS only).
pub(crate) fn encode(
    version: ProtocolVersion,
    s: &Subscribe,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut remaining = 2;
    let mut props_len = 0;
    if version.is_v5() {
        props_len =
            props::len_varint(s.subscription_identifier)? + props::len_user(&s.user_properties)?;
        remaining += props::block_len(props_len)?;
    }
    for (filter, _) in &s.filters {
        remaining += field_len(filter.as_bytes())? + 1;
    }
    wire::put_fixed_header(buf, (wire::SUBSCRIBE << 4) | 0b0010, remaining)?;
    buf.put_u16(s.packet_id);
    if version.is_v5() {
        wire::put_varint(buf, props_len);
        props::put_varint(
            buf,
            prop::SUBSCRIPTION_IDENTIFIER,
            s.subscription_identifier,
        );
        props::put_user(buf, &s.user_properties);
    }
    for (filter, options) in &s.filters {
        put_field(buf, filter.as_bytes());
        buf.put_u8(options.to_byte(version));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;
    use bytestring::ByteString;

    fn opts(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        }
    }

    #[test]
    fn v3_subscribe_with_two_filters() {
        // MQTT 3.1.1 §3.8.3 payload example: "a/b" QoS 1, "c/d" QoS 2; packet id 10.
        let bytes = [
            0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/',
            b'd', 0x02,
        ];
        let want = Packet::Subscribe(Subscribe {
            packet_id: 10,
            filters: vec![
                (ByteString::from_static("a/b"), opts(QoS::AtLeastOnce)),
                (ByteString::from_static("c/d"), opts(QoS::ExactlyOnce)),
            ],
            subscription_identifier: None,
            user_properties: vec![],
        });
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            assert_eq!(decode_one(version, &bytes).unwrap(), want);
            assert_eq!(encode_one(version, &want).unwrap(), bytes.to_vec());
        }
    }

    #[test]
    fn v5_subscribe_with_options_and_subscription_identifier() {
        // Sub id 300, filter "s/#" with QoS 1, no local, retain as published, retain handling 2.
        let bytes = [
            0x82, 0x0C, 0x00, 0x01, 0x03, 0x0B, 0xAC, 0x02, 0x00, 0x03, b's', b'/', b'#', 0x2D,
        ];
        let Packet::Subscribe(s) = decode_one(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not a subscribe");
        };
        assert_eq!(s.subscription_identifier, Some(300));
        assert_eq!(
            s.filters[0].1,
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            }
        );
        assert_eq!(
            encode_one(ProtocolVersion::V5, &Packet::Subscribe(s.clone())).unwrap(),
            bytes.to_vec()
        );
        // For 3.x only the QoS survives.
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &Packet::Subscribe(s)).unwrap(),
            vec![0x82, 0x08, 0x00, 0x01, 0x00, 0x03, b's', b'/', b'#', 0x01]
        );
    }

    #[test]
    fn subscribe_needs_flags_0010_and_at_least_one_filter() {
        assert_eq!(
            decode_one(
                ProtocolVersion::V3_1_1,
                &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00]
            ),
            Err(DecodeError::InvalidFlags {
                packet_type: 8,
                flags: 0
            })
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x82, 0x02, 0x00, 0x01]),
            Err(DecodeError::NoSubscribeFilters)
        );
        let err = decode_one(ProtocolVersion::V5, &[0x82, 0x03, 0x00, 0x01, 0x00]).unwrap_err();
        assert_eq!(err, DecodeError::NoSubscribeFilters);
        assert_eq!(err.reason_code(), crate::reason::PROTOCOL_ERROR);
    }

    #[test]
    fn subscription_options_reserved_bits_qos_3_and_retain_handling_3() {
        let v3 = ProtocolVersion::V3_1_1;
        let v5 = ProtocolVersion::V5;
        assert_eq!(
            SubscriptionOptions::from_byte(v3, 0x04),
            Err(DecodeError::ReservedSubscriptionOptionBits(0x04))
        );
        assert_eq!(
            SubscriptionOptions::from_byte(v5, 0x40),
            Err(DecodeError::ReservedSubscriptionOptionBits(0x40))
        );
        assert_eq!(
            SubscriptionOptions::from_byte(v5, 0x03),
            Err(DecodeError::InvalidSubscriptionQoS)
        );
        assert_eq!(
            SubscriptionOptions::from_byte(v5, 0x30),
            Err(DecodeError::InvalidRetainHandling)
        );
        // And through the packet decoder.
        assert_eq!(
            decode_one(v5, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30]),
            Err(DecodeError::InvalidRetainHandling)
        );
    }

    #[test]
    fn subscribe_properties_rules() {
        // Subscription identifier 0.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'a', 0x00]
            ),
            Err(DecodeError::InvalidPropertyValue(0x0B))
        );
        // Two subscription identifiers.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00]
            ),
            Err(DecodeError::DuplicateProperty(0x0B))
        );
        // A filter without its options byte.
        assert_eq!(
            decode_one(
                ProtocolVersion::V3_1_1,
                &[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a']
            ),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn v5_subscribe_round_trips_with_user_properties() {
        let s = Subscribe {
            packet_id: 42,
            filters: vec![
                ("$share/g/a/+".into(), opts(QoS::ExactlyOnce)),
                ("b".into(), opts(QoS::AtMostOnce)),
            ],
            subscription_identifier: Some(268_435_455),
            user_properties: vec![("k".into(), "v".into())],
        };
        round_trip(ProtocolVersion::V5, &Packet::Subscribe(s));
    }
}
