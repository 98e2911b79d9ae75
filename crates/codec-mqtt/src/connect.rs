//! CONNECT (MQTT 5.0 §3.1, MQTT 3.1.1 §3.1, MQTT 3.1 "CONNECT").
//!
//! CONNECT is self-describing: it is decoded from its own protocol name and level, whatever
//! version the connection's codec was created with, and encoded for `Connect::protocol`.

use bytes::{BufMut, Bytes, BytesMut};
use junction_types::QoS;

use crate::error::{DecodeError, EncodeError};
use crate::packet::{Connect, ConnectProperties, LastWill, ProtocolVersion, WillProperties};
use crate::wire::{
    self, field_len, flag_value, nonzero_u16, nonzero_u32, not_allowed, opt_bin, opt_str, prop,
    props, put_field, read_properties, PropertySet, Reader,
};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL_QOS: u8 = 0x18;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

const PROPERTIES: PropertySet = PropertySet {
    packet: "CONNECT",
    allowed: prop::mask(&[
        prop::SESSION_EXPIRY_INTERVAL,
        prop::RECEIVE_MAXIMUM,
        prop::MAXIMUM_PACKET_SIZE,
        prop::TOPIC_ALIAS_MAXIMUM,
        prop::REQUEST_RESPONSE_INFORMATION,
        prop::REQUEST_PROBLEM_INFORMATION,
        prop::USER_PROPERTY,
        prop::AUTHENTICATION_METHOD,
        prop::AUTHENTICATION_DATA,
    ]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

const WILL_PROPERTIES: PropertySet = PropertySet {
    packet: "will properties",
    allowed: prop::mask(&[
        prop::WILL_DELAY_INTERVAL,
        prop::PAYLOAD_FORMAT_INDICATOR,
        prop::MESSAGE_EXPIRY_INTERVAL,
        prop::CONTENT_TYPE,
        prop::RESPONSE_TOPIC,
        prop::CORRELATION_DATA,
        prop::USER_PROPERTY,
    ]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

/// Reads the protocol name and level and maps them to a version (§3.1.2.1, §3.1.2.2).
fn protocol(r: &mut Reader<'_>) -> Result<ProtocolVersion, DecodeError> {
    let name = r.field_slice()?;
    let level = r.u8().ok();
    let name_known = name == b"MQTT" || name == b"MQIsdp";
    let Some(level) = level else {
        return Err(if name_known {
            DecodeError::Truncated
        } else {
            DecodeError::InvalidProtocolName { level: None }
        });
    };
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        _ if name_known => Err(DecodeError::UnsupportedProtocolVersion { level }),
        _ => Err(DecodeError::InvalidProtocolName { level: Some(level) }),
    }
}

/// Checks a will topic is a usable topic name (non-empty, no wildcards).
fn check_will_topic(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::EmptyTopicName);
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::WildcardInTopicName);
    }
    Ok(())
}

/// Decodes a CONNECT body.
pub(crate) fn decode(body: &Bytes) -> Result<Connect, DecodeError> {
    let mut r = Reader::new(body);
    let version = protocol(&mut r)?;
    let flags = r.u8()?;
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::ReservedConnectFlag);
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_qos = (flags & FLAG_WILL_QOS) >> FLAG_WILL_QOS_SHIFT;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    if will_qos == 3 || (!will_flag && (will_qos != 0 || will_retain)) {
        return Err(DecodeError::InvalidWillFlags);
    }
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    if has_password && !has_username && !version.is_v5() {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;

    let mut properties = ConnectProperties::default();
    if version.is_v5() {
        read_properties(&mut r, &PROPERTIES, |id, r| {
            let p = &mut properties;
            match id {
                prop::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
                prop::RECEIVE_MAXIMUM => p.receive_maximum = Some(nonzero_u16(id, r)?),
                prop::MAXIMUM_PACKET_SIZE => p.maximum_packet_size = Some(nonzero_u32(id, r)?),
                prop::TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
                prop::REQUEST_RESPONSE_INFORMATION => {
                    p.request_response_information = Some(flag_value(id, r)?)
                }
                prop::REQUEST_PROBLEM_INFORMATION => {
                    p.request_problem_information = Some(flag_value(id, r)?)
                }
                prop::USER_PROPERTY => p.user_properties.push(r.string_pair()?),
                prop::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
                prop::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
                _ => return Err(not_allowed(id, &PROPERTIES)),
            }
            Ok(())
        })?;
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
    }

    let client_id = r.string()?;
    let will = if will_flag {
        let mut wp = WillProperties::default();
        if version.is_v5() {
            read_properties(&mut r, &WILL_PROPERTIES, |id, r| {
                match id {
                    prop::WILL_DELAY_INTERVAL => wp.delay_interval = Some(r.u32()?),
                    prop::PAYLOAD_FORMAT_INDICATOR => {
                        wp.payload_format_indicator = Some(flag_value(id, r)?)
                    }
                    prop::MESSAGE_EXPIRY_INTERVAL => wp.message_expiry_interval = Some(r.u32()?),
                    prop::CONTENT_TYPE => wp.content_type = Some(r.string()?),
                    prop::RESPONSE_TOPIC => wp.response_topic = Some(r.string()?),
                    prop::CORRELATION_DATA => wp.correlation_data = Some(r.binary()?),
                    prop::USER_PROPERTY => wp.user_properties.push(r.string_pair()?),
                    _ => return Err(not_allowed(id, &WILL_PROPERTIES)),
                }
                Ok(())
            })?;
        }
        let topic = r.string()?;
        check_will_topic(&topic)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            // will_qos < 3 was checked above.
            qos: QoS::from_u8(will_qos).unwrap_or(QoS::AtMostOnce),
            retain: will_retain,
            properties: wp,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;

    Ok(Connect {
        protocol: version,
        clean_start: flags & FLAG_CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

impl ConnectProperties {
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_u32(self.session_expiry_interval)
            + props::len_u16(self.receive_maximum)
            + props::len_u32(self.maximum_packet_size)
            + props::len_u16(self.topic_alias_maximum)
            + props::len_u8(self.request_response_information)
            + props::len_u8(self.request_problem_information)
            + props::len_user(&self.user_properties)?
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
        props::put_u32(buf, prop::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        props::put_u16(buf, prop::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        props::put_u8(
            buf,
            prop::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        props::put_u8(
            buf,
            prop::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
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

impl WillProperties {
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_u32(self.delay_interval)
            + props::len_u8(self.payload_format_indicator)
            + props::len_u32(self.message_expiry_interval)
            + props::len_field(opt_str(&self.content_type))?
            + props::len_field(opt_str(&self.response_topic))?
            + props::len_field(opt_bin(&self.correlation_data))?
            + props::len_user(&self.user_properties)?)
    }

    fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_u32(buf, prop::WILL_DELAY_INTERVAL, self.delay_interval);
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
        props::put_field(buf, prop::CONTENT_TYPE, opt_str(&self.content_type));
        props::put_field(buf, prop::RESPONSE_TOPIC, opt_str(&self.response_topic));
        props::put_field(buf, prop::CORRELATION_DATA, opt_bin(&self.correlation_data));
        props::put_user(buf, &self.user_properties);
    }
}

/// Appends a CONNECT encoded for `connect.protocol`.
pub(crate) fn encode(c: &Connect, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    if !v5 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::PasswordWithoutUsername);
    }
    let name: &[u8] = match c.protocol {
        ProtocolVersion::V3_1 => b"MQIsdp",
        _ => b"MQTT",
    };
    // Protocol name, level, flags, keep alive.
    let mut remaining = 2 + name.len() + 1 + 1 + 2;
    let props_len = if v5 {
        let n = c.properties.encoded_len()?;
        remaining += props::block_len(n)?;
        n
    } else {
        0
    };
    remaining += field_len(c.client_id.as_bytes())?;
    let mut will_props_len = 0;
    if let Some(w) = &c.will {
        if v5 {
            will_props_len = w.properties.encoded_len()?;
            remaining += props::block_len(will_props_len)?;
        }
        remaining += field_len(w.topic.as_bytes())? + field_len(&w.payload)?;
    }
    if let Some(u) = &c.username {
        remaining += field_len(u.as_bytes())?;
    }
    if let Some(p) = &c.password {
        remaining += field_len(p)?;
    }

    let mut flags = 0u8;
    if c.clean_start {
        flags |= FLAG_CLEAN_START;
    }
    if let Some(w) = &c.will {
        flags |= FLAG_WILL | (w.qos.as_u8() << FLAG_WILL_QOS_SHIFT);
        if w.retain {
            flags |= FLAG_WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= FLAG_USERNAME;
    }
    if c.password.is_some() {
        flags |= FLAG_PASSWORD;
    }

    wire::put_fixed_header(buf, wire::CONNECT << 4, remaining)?;
    put_field(buf, name);
    buf.put_u8(c.protocol.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if v5 {
        c.properties.write(props_len, buf);
    }
    put_field(buf, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            w.properties.write(will_props_len, buf);
        }
        put_field(buf, w.topic.as_bytes());
        put_field(buf, &w.payload);
    }
    if let Some(u) = &c.username {
        put_field(buf, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_field(buf, p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use bytestring::ByteString;

    fn minimal(protocol: ProtocolVersion) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: ByteString::from_static("abc"),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    #[test]
    fn decodes_a_mqtt_3_1_connect_from_mqisdp_level_3() {
        // mosquitto_pub -V mqttv31 -i abc: name "MQIsdp", level 3, clean session, keep alive 60.
        let bytes = [
            0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C,
            0x00, 0x03, b'a', b'b', b'c',
        ];
        let packet = decode_one(ProtocolVersion::V3_1_1, &bytes).unwrap();
        assert_eq!(
            packet,
            crate::Packet::Connect(Box::new(minimal(ProtocolVersion::V3_1)))
        );
        assert_eq!(
            encode_one(ProtocolVersion::V3_1, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn decodes_the_3_1_1_spec_example_with_will_user_and_password() {
        // MQTT 3.1.1 §3.1.2.10 example variable header: "MQTT", 4, flags 0xCE, keep alive 10.
        let bytes = [
            0x10, 0x22, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A, // header
            0x00, 0x02, b'i', b'd', // client id
            0x00, 0x03, b'a', b'/', b'b', // will topic
            0x00, 0x03, b'b', b'y', b'e', // will payload
            0x00, 0x04, b'u', b's', b'e', b'r', // user name
            0x00, 0x02, b'p', b'w', // password
        ];
        let crate::Packet::Connect(c) = decode_one(ProtocolVersion::V5, &bytes).unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(c.protocol, ProtocolVersion::V3_1_1);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 10);
        assert_eq!(c.client_id, "id");
        let will = c.will.as_ref().unwrap();
        assert_eq!(
            (&will.topic[..], &will.payload[..], will.qos, will.retain),
            ("a/b", &b"bye"[..], QoS::AtLeastOnce, false)
        );
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &crate::Packet::Connect(c)).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn decodes_a_v5_connect_with_properties_and_will_properties() {
        // "MQTT" 5, flags: user name, will retain, will qos 2, will, clean start = 0xB6.
        let bytes = [
            0x10, 0x29, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xB6, 0x00, 0x1E, // header
            0x08, 0x11, 0x00, 0x00, 0x0E, 0x10, 0x21, 0x00,
            0x14, // session expiry 3600, rx max 20
            0x00, 0x01, b'c', // client id
            0x05, 0x18, 0x00, 0x00, 0x00, 0x05, // will delay 5
            0x00, 0x03, b'w', b'/', b't', // will topic
            0x00, 0x02, b'h', b'i', // will payload
            0x00, 0x02, b'u', b'1', // user name
        ];
        let crate::Packet::Connect(c) = decode_one(ProtocolVersion::V3_1_1, &bytes).unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(c.protocol, ProtocolVersion::V5);
        assert_eq!(c.keep_alive, 30);
        assert_eq!(c.properties.session_expiry_interval, Some(3600));
        assert_eq!(c.properties.receive_maximum, Some(20));
        let will = c.will.as_ref().unwrap();
        assert_eq!(will.qos, QoS::ExactlyOnce);
        assert!(will.retain);
        assert_eq!(will.properties.delay_interval, Some(5));
        assert_eq!(c.username.as_deref(), Some("u1"));
        assert_eq!(c.password, None);
        assert_eq!(
            encode_one(ProtocolVersion::V3_1, &crate::Packet::Connect(c)).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v5_allows_a_password_without_a_user_name() {
        let mut c = minimal(ProtocolVersion::V5);
        c.password = Some(Bytes::from_static(b"token"));
        round_trip(ProtocolVersion::V5, &crate::Packet::Connect(Box::new(c)));
    }

    #[test]
    fn v3_rejects_a_password_without_a_user_name() {
        // flags 0x42: password + clean session.
        let bytes = [
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x42, 0x00, 0x3C, 0x00, 0x00,
            0x00, 0x02, b'p', b'w',
        ];
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &bytes),
            Err(DecodeError::PasswordWithoutUsername)
        );
        let mut c = minimal(ProtocolVersion::V3_1_1);
        c.password = Some(Bytes::from_static(b"pw"));
        assert_eq!(
            encode_one(
                ProtocolVersion::V3_1_1,
                &crate::Packet::Connect(Box::new(c))
            ),
            Err(EncodeError::PasswordWithoutUsername)
        );
    }

    fn connect_with(name: &[u8], level: u8, flags: u8) -> Vec<u8> {
        let mut body = vec![0x00, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
        if level == 5 {
            body.push(0x00);
        }
        body.extend_from_slice(&[0x00, 0x01, b'c']);
        let mut out = vec![0x10, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn unknown_protocol_level_is_unsupported_version_and_says_how_to_answer() {
        let err = decode_one(ProtocolVersion::V5, &connect_with(b"MQTT", 6, 0x02)).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedProtocolVersion { level: 6 });
        assert_eq!(
            err.reason_code(),
            crate::reason::UNSUPPORTED_PROTOCOL_VERSION
        );
        assert_eq!(err.connack_version(), Some(ProtocolVersion::V3_1_1));
        // A name/level mismatch is unsupported too.
        let err = decode_one(ProtocolVersion::V5, &connect_with(b"MQIsdp", 5, 0x02)).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedProtocolVersion { level: 5 });
        assert_eq!(err.connack_version(), Some(ProtocolVersion::V5));
    }

    #[test]
    fn unknown_protocol_name_is_reported_with_its_level() {
        let err = decode_one(ProtocolVersion::V5, &connect_with(b"MQTX", 4, 0x02)).unwrap_err();
        assert_eq!(err, DecodeError::InvalidProtocolName { level: Some(4) });
        assert_eq!(
            err.reason_code(),
            crate::reason::UNSUPPORTED_PROTOCOL_VERSION
        );
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x10, 0x02, 0x00, 0x00]),
            Err(DecodeError::InvalidProtocolName { level: None })
        );
    }

    #[test]
    fn reserved_connect_flag_is_malformed() {
        assert_eq!(
            decode_one(ProtocolVersion::V5, &connect_with(b"MQTT", 4, 0x03)),
            Err(DecodeError::ReservedConnectFlag)
        );
    }

    #[test]
    fn will_qos_or_retain_without_will_flag_and_will_qos_3_are_rejected() {
        for flags in [0x08, 0x10, 0x20, 0x1C] {
            assert_eq!(
                decode_one(ProtocolVersion::V5, &connect_with(b"MQTT", 4, flags)),
                Err(DecodeError::InvalidWillFlags),
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn will_topic_must_be_a_valid_topic_name() {
        let mut c = minimal(ProtocolVersion::V3_1_1);
        c.will = Some(LastWill {
            topic: ByteString::from_static("a/+"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let bytes = encode_one(
            ProtocolVersion::V3_1_1,
            &crate::Packet::Connect(Box::new(c)),
        )
        .unwrap();
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &bytes),
            Err(DecodeError::WildcardInTopicName)
        );
    }

    #[test]
    fn property_rules_apply_to_connect_and_will_properties() {
        // Topic Alias (0x23) is not a CONNECT property.
        let mut bytes = vec![
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x23,
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            decode_one(ProtocolVersion::V5, &bytes),
            Err(DecodeError::PropertyNotAllowed {
                property: 0x23,
                packet: "CONNECT"
            })
        );
        // Receive Maximum 0 is a protocol error.
        bytes[13] = 0x21;
        assert_eq!(
            decode_one(ProtocolVersion::V5, &bytes),
            Err(DecodeError::InvalidPropertyValue(0x21))
        );
        // Authentication Data without Authentication Method.
        let bytes = [
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x16,
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            decode_one(ProtocolVersion::V5, &bytes),
            Err(DecodeError::AuthDataWithoutMethod)
        );
        // Session Expiry Interval (0x11) is not a will property.
        let bytes = [
            0x10, 0x18, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x06, 0x00, 0x3C, 0x00, 0x00,
            0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b't', 0x00, 0x00,
        ];
        assert_eq!(
            decode_one(ProtocolVersion::V5, &bytes),
            Err(DecodeError::PropertyNotAllowed {
                property: 0x11,
                packet: "will properties"
            })
        );
    }

    #[test]
    fn truncated_and_overlong_connects_are_rejected() {
        let good = connect_with(b"MQTT", 4, 0x02);
        let mut short = good.clone();
        short.pop();
        short[1] -= 1;
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &short),
            Err(DecodeError::Truncated)
        );
        let mut long = good;
        long.push(0xFF);
        long[1] += 1;
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &long),
            Err(DecodeError::TrailingBytes(1))
        );
    }
}
