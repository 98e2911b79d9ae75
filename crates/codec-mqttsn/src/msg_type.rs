//! MsgType values (MQTT-SN 1.2 §5.2.2), their names and the spec section that
//! defines each message's format. 0x03, 0x11, 0x19, 0x1E–0xFD and 0xFF are reserved.

/// ADVERTISE (§5.4.1).
pub const ADVERTISE: u8 = 0x00;
/// SEARCHGW (§5.4.2).
pub const SEARCHGW: u8 = 0x01;
/// GWINFO (§5.4.3).
pub const GWINFO: u8 = 0x02;
/// CONNECT (§5.4.4).
pub const CONNECT: u8 = 0x04;
/// CONNACK (§5.4.5).
pub const CONNACK: u8 = 0x05;
/// WILLTOPICREQ (§5.4.6).
pub const WILLTOPICREQ: u8 = 0x06;
/// WILLTOPIC (§5.4.7).
pub const WILLTOPIC: u8 = 0x07;
/// WILLMSGREQ (§5.4.8).
pub const WILLMSGREQ: u8 = 0x08;
/// WILLMSG (§5.4.9).
pub const WILLMSG: u8 = 0x09;
/// REGISTER (§5.4.10).
pub const REGISTER: u8 = 0x0A;
/// REGACK (§5.4.11).
pub const REGACK: u8 = 0x0B;
/// PUBLISH (§5.4.12).
pub const PUBLISH: u8 = 0x0C;
/// PUBACK (§5.4.13).
pub const PUBACK: u8 = 0x0D;
/// PUBCOMP (§5.4.14).
pub const PUBCOMP: u8 = 0x0E;
/// PUBREC (§5.4.14).
pub const PUBREC: u8 = 0x0F;
/// PUBREL (§5.4.14).
pub const PUBREL: u8 = 0x10;
/// SUBSCRIBE (§5.4.15).
pub const SUBSCRIBE: u8 = 0x12;
/// SUBACK (§5.4.16).
pub const SUBACK: u8 = 0x13;
/// UNSUBSCRIBE (§5.4.17).
pub const UNSUBSCRIBE: u8 = 0x14;
/// UNSUBACK (§5.4.18).
pub const UNSUBACK: u8 = 0x15;
/// PINGREQ (§5.4.19).
pub const PINGREQ: u8 = 0x16;
/// PINGRESP (§5.4.20).
pub const PINGRESP: u8 = 0x17;
/// DISCONNECT (§5.4.21).
pub const DISCONNECT: u8 = 0x18;
/// WILLTOPICUPD (§5.4.22).
pub const WILLTOPICUPD: u8 = 0x1A;
/// WILLTOPICRESP (§5.4.24).
pub const WILLTOPICRESP: u8 = 0x1B;
/// WILLMSGUPD (§5.4.23).
pub const WILLMSGUPD: u8 = 0x1C;
/// WILLMSGRESP (§5.4.25).
pub const WILLMSGRESP: u8 = 0x1D;
/// Encapsulated message from a forwarder (§5.5).
pub const ENCAPSULATED: u8 = 0xFE;

/// The message name for a MsgType value, `None` for a reserved one.
pub const fn name(msg_type: u8) -> Option<&'static str> {
    Some(match msg_type {
        ADVERTISE => "ADVERTISE",
        SEARCHGW => "SEARCHGW",
        GWINFO => "GWINFO",
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        WILLTOPICREQ => "WILLTOPICREQ",
        WILLTOPIC => "WILLTOPIC",
        WILLMSGREQ => "WILLMSGREQ",
        WILLMSG => "WILLMSG",
        REGISTER => "REGISTER",
        REGACK => "REGACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBCOMP => "PUBCOMP",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        WILLTOPICUPD => "WILLTOPICUPD",
        WILLTOPICRESP => "WILLTOPICRESP",
        WILLMSGUPD => "WILLMSGUPD",
        WILLMSGRESP => "WILLMSGRESP",
        ENCAPSULATED => "ENCAPSULATED",
        _ => return None,
    })
}

/// The section of MQTT-SN 1.2 that defines the format of `msg_type`, e.g. "§5.4.12 PUBLISH".
pub const fn section(msg_type: u8) -> &'static str {
    match msg_type {
        ADVERTISE => "§5.4.1 ADVERTISE",
        SEARCHGW => "§5.4.2 SEARCHGW",
        GWINFO => "§5.4.3 GWINFO",
        CONNECT => "§5.4.4 CONNECT",
        CONNACK => "§5.4.5 CONNACK",
        WILLTOPICREQ => "§5.4.6 WILLTOPICREQ",
        WILLTOPIC => "§5.4.7 WILLTOPIC",
        WILLMSGREQ => "§5.4.8 WILLMSGREQ",
        WILLMSG => "§5.4.9 WILLMSG",
        REGISTER => "§5.4.10 REGISTER",
        REGACK => "§5.4.11 REGACK",
        PUBLISH => "§5.4.12 PUBLISH",
        PUBACK => "§5.4.13 PUBACK",
        PUBCOMP => "§5.4.14 PUBCOMP",
        PUBREC => "§5.4.14 PUBREC",
        PUBREL => "§5.4.14 PUBREL",
        SUBSCRIBE => "§5.4.15 SUBSCRIBE",
        SUBACK => "§5.4.16 SUBACK",
        UNSUBSCRIBE => "§5.4.17 UNSUBSCRIBE",
        UNSUBACK => "§5.4.18 UNSUBACK",
        PINGREQ => "§5.4.19 PINGREQ",
        PINGRESP => "§5.4.20 PINGRESP",
        DISCONNECT => "§5.4.21 DISCONNECT",
        WILLTOPICUPD => "§5.4.22 WILLTOPICUPD",
        WILLMSGUPD => "§5.4.23 WILLMSGUPD",
        WILLTOPICRESP => "§5.4.24 WILLTOPICRESP",
        WILLMSGRESP => "§5.4.25 WILLMSGRESP",
        ENCAPSULATED => "§5.5 Forwarder Encapsulation",
        _ => "§5.2.2 MsgType",
    }
}
