//! CONNACK (MQTT 5.0 §3.2, MQTT 3.1.1 §3.2).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ConnAck, ConnAckProperties, ProtocolVersion};
use crate::wire::{
    self, flag_value, nonzero_u16, nonzero_u32, not_allowed, opt_bin, opt_str, prop, props,
    read_properties, PropertySet, Reader,
};

const PROPERTIES: PropertySet = PropertySet {
    packet: "CONNACK",
    allowed: prop::mask(&[
        prop::SESSION_EXPIRY_INTERVAL,
        prop::RECEIVE_MAXIMUM,
        prop::MAXIMUM_QOS,
        prop::RETAIN_AVAILABLE,
        prop::MAXIMUM_PACKET_SIZE,
        prop::ASSIGNED_CLIENT_IDENTIFIER,
        prop::TOPIC_ALIAS_MAXIMUM,
        prop::REASON_STRING,
        prop::USER_PROPERTY,
        prop::WILDCARD_SUBSCRIPTION_AVAILABLE,
        prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        prop::SHARED_SUBSCRIPTION_AVAILABLE,
        prop::SERVER_KEEP_ALIVE,
        prop::RESPONSE_INFORMATION,
        prop::SERVER_REFERENCE,
        prop::AUTHENTICATION_METHOD,
        prop::AUTHENTICATION_DATA,
    ]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

/// Highest MQTT 3.x CONNACK return code (5, not authorized).
const MAX_V3_RETURN_CODE: u8 = 5;

/// Decodes a CONNACK body.
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<ConnAck, DecodeError> {
    let mut r = Reader::new(body);
    let flags = r.u8()?;
    let reason_code = r.u8()?;
    // MQTT 3.1 has no session present flag: the byte is unused there.
    let session_present = match version {
        ProtocolVersion::V3_1 => false,
        _ if flags & 0xFE != 0 => return Err(DecodeError::InvalidConnAckFlags),
        _ => flags & 0x01 != 0,
    };
    let mut properties = ConnAckProperties::default();
    if version.is_v5() {
        // Lenient: a 5.0 CONNACK cut short after the reason code has no properties.
        if !r.is_empty() {
            read_properties(&mut r, &PROPERTIES, |id, r| {
                let p = &mut properties;
                match id {
                    prop::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
                    prop::RECEIVE_MAXIMUM => p.receive_maximum = Some(nonzero_u16(id, r)?),
                    prop::MAXIMUM_QOS => p.maximum_qos = Some(flag_value(id, r)?),
                    prop::RETAIN_AVAILABLE => p.retain_available = Some(flag_value(id, r)? == 1),
                    prop::MAXIMUM_PACKET_SIZE => p.maximum_packet_size = Some(nonzero_u32(id, r)?),
                    prop::ASSIGNED_CLIENT_IDENTIFIER => {
                        p.assigned_client_identifier = Some(r.string()?)
                    }
                    prop::TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
                    prop::REASON_STRING => p.reason_string = Some(r.string()?),
                    prop::USER_PROPERTY => p.user_properties.push(r.string_pair()?),
                    prop::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                        p.wildcard_subscription_available = Some(flag_value(id, r)? == 1)
                    }
                    prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                        p.subscription_identifiers_available = Some(flag_value(id, r)? == 1)
                    }
                    prop::SHARED_SUBSCRIPTION_AVAILABLE => {
                        p.shared_subscription_available = Some(flag_value(id, r)? == 1)
                    }
                    prop::SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
                    prop::RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
                    prop::SERVER_REFERENCE => p.server_reference = Some(r.string()?),
                    prop::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
                    prop::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
                    _ => return Err(not_allowed(id, &PROPERTIES)),
                }
                Ok(())
            })?;
        }
    } else if reason_code > MAX_V3_RETURN_CODE {
        return Err(DecodeError::InvalidReasonCode(reason_code));
    }
    r.finish()?;
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

impl ConnAckProperties {
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_u32(self.session_expiry_interval)
            + props::len_u16(self.receive_maximum)
            + props::len_u8(self.maximum_qos)
            + props::len_u8(self.retain_available.map(u8::from))
            + props::len_u32(self.maximum_packet_size)
            + props::len_field(opt_str(&self.assigned_client_identifier))?
            + props::len_u16(self.topic_alias_maximum)
            + props::len_field(opt_str(&self.reason_string))?
            + props::len_user(&self.user_properties)?
            + props::len_u8(self.wildcard_subscription_available.map(u8::from))
            + props::len_u8(self.subscription_identifiers_available.map(u8::from))
            + props::len_u8(self.shared_subscription_available.map(u8::from))
            + props::len_u16(self.server_keep_alive)
            + props::len_field(opt_str(&self.response_information))?
            + props::len_field(opt_str(&self.server_reference))?
            + props::len_field(opt_str(&self.authentication_method))?
            + props::len_field(opt_bin(&self.authentication_data))?)
    }

    fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_u32(
            buf,
            prop::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        props::put_u16(buf, prop::RECEIVE_MAXIMUM, self.receive_maximum);
        props::put_u8(buf, prop::MAXIMUM_QOS, self.maximum_qos);
        props::put_u8(
            buf,
            prop::RETAIN_AVAILABLE,
            self.retain_available.map(u8::from),
        );
        props::put_u32(buf, prop::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        props::put_field(
            buf,
            prop::ASSIGNED_CLIENT_IDENTIFIER,
            opt_str(&self.assigned_client_identifier),
        );
        props::put_u16(buf, prop::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        props::put_field(buf, prop::REASON_STRING, opt_str(&self.reason_string));
        props::put_u8(
            buf,
            prop::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available.map(u8::from),
        );
        props::put_u8(
            buf,
            prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available.map(u8::from),
        );
        props::put_u8(
            buf,
            prop::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available.map(u8::from),
        );
        props::put_u16(buf, prop::SERVER_KEEP_ALIVE, self.server_keep_alive);
        props::put_field(
            buf,
            prop::RESPONSE_INFORMATION,
            opt_str(&self.response_information),
        );
        props::put_field(buf, prop::SERVER_REFERENCE, opt_str(&self.server_reference));
        props::put_field(
            buf,
            prop::AUTHENTICATION_METHOD,
            opt_str(&self.authentication_method),
        );
        props::put_field(
            buf,
            prop::AUTHENTICATION_DATA,
            opt_bin(&self.authentication_data),
        );
        props::put_user(buf, &self.user_properties);
    }
}

/// Appends a CONNACK for `version`. For 3.x `reason_code` is written as is (it must already
/// be a 3.x return code, see [`crate::reason::connack_v5_to_v3`]).
pub(crate) fn encode(
    version: ProtocolVersion,
    c: &ConnAck,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let flags = match version {
        ProtocolVersion::V3_1 => 0,
        _ => u8::from(c.session_present),
    };
    if version.is_v5() {
        let props_len = c.properties.encoded_len()?;
        wire::put_fixed_header(buf, wire::CONNACK << 4, 2 + props::block_len(props_len)?)?;
        buf.put_u8(flags);
        buf.put_u8(c.reason_code);
        c.properties.write(props_len, buf);
    } else {
        wire::put_fixed_header(buf, wire::CONNACK << 4, 2)?;
        buf.put_u8(flags);
        buf.put_u8(c.reason_code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    #[test]
    fn v3_1_1_connack_with_session_present() {
        let bytes = [0x20, 0x02, 0x01, 0x00];
        let packet = decode_one(ProtocolVersion::V3_1_1, &bytes).unwrap();
        assert_eq!(
            packet,
            Packet::ConnAck(ConnAck {
                session_present: true,
                ..ConnAck::default()
            })
        );
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v3_1_connack_has_no_session_present_flag() {
        let ack = Packet::ConnAck(ConnAck {
            session_present: true,
            reason_code: 5,
            ..ConnAck::default()
        });
        assert_eq!(
            encode_one(ProtocolVersion::V3_1, &ack).unwrap(),
            vec![0x20, 0x02, 0x00, 0x05]
        );
    }

    #[test]
    fn v3_connack_ignores_v5_properties_and_rejects_unknown_return_codes() {
        let mut ack = ConnAck {
            reason_code: 1,
            ..ConnAck::default()
        };
        ack.properties.maximum_qos = Some(1);
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &Packet::ConnAck(ack)).unwrap(),
            vec![0x20, 0x02, 0x00, 0x01]
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x20, 0x02, 0x00, 0x06]),
            Err(DecodeError::InvalidReasonCode(6))
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x20, 0x03, 0x00, 0x00, 0x00]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn v5_connack_with_properties() {
        // Reason 0, properties: receive maximum 10, retain available 0, assigned id "x1".
        let bytes = [
            0x20, 0x0D, 0x00, 0x00, 0x0A, 0x21, 0x00, 0x0A, 0x25, 0x00, 0x12, 0x00, 0x02, b'x',
            b'1',
        ];
        let Packet::ConnAck(ack) = decode_one(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not a connack");
        };
        assert_eq!(ack.properties.receive_maximum, Some(10));
        assert_eq!(ack.properties.retain_available, Some(false));
        assert_eq!(
            ack.properties.assigned_client_identifier.as_deref(),
            Some("x1")
        );
        assert_eq!(
            encode_one(ProtocolVersion::V5, &Packet::ConnAck(ack)).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v5_connack_flags_and_property_values_are_checked() {
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x20, 0x03, 0x02, 0x00, 0x00]),
            Err(DecodeError::InvalidConnAckFlags)
        );
        // Maximum QoS 2 is a protocol error (§3.2.2.3.4).
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02]
            ),
            Err(DecodeError::InvalidPropertyValue(0x24))
        );
        // Duplicate Server Keep Alive.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x20, 0x09, 0x00, 0x00, 0x06, 0x13, 0x00, 0x01, 0x13, 0x00, 0x02]
            ),
            Err(DecodeError::DuplicateProperty(0x13))
        );
    }

    #[test]
    fn v5_connack_round_trips_every_property() {
        let ack = ConnAck {
            session_present: true,
            reason_code: 0,
            properties: ConnAckProperties {
                session_expiry_interval: Some(7),
                receive_maximum: Some(100),
                maximum_qos: Some(1),
                retain_available: Some(true),
                maximum_packet_size: Some(1 << 20),
                assigned_client_identifier: Some("auto-1".into()),
                topic_alias_maximum: Some(10),
                reason_string: Some("ok".into()),
                user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                wildcard_subscription_available: Some(false),
                subscription_identifiers_available: Some(true),
                shared_subscription_available: Some(true),
                server_keep_alive: Some(30),
                response_information: Some("resp/".into()),
                server_reference: Some("other:1883".into()),
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"\x00\x01")),
            },
        };
        round_trip(ProtocolVersion::V5, &Packet::ConnAck(ack));
    }
}
