//! The Flags octet (MQTT-SN 1.2 §5.3.4), shared by CONNECT, WILLTOPIC, PUBLISH, SUBSCRIBE,
//! SUBACK, UNSUBSCRIBE and WILLTOPICUPD.
//!
//! ```text
//!   bit  7     6  5    4       3      2              1  0
//!        DUP   QoS     Retain  Will   CleanSession   TopicIdType
//! ```
//!
//! Every one of the 256 octets is a valid [`Flags`]: the QoS and TopicIdType fields use all
//! four of their values (QoS `0b11` is −1, TopicIdType `0b11` is reserved and left to the
//! gateway to refuse with return code 0x03), and bits a message type does not use are kept as
//! received, so `Flags::from_byte(b).to_byte() == b` for every `b`.

/// QoS level of the Flags octet (§5.3.4): `0b00`, `0b01`, `0b10` and `0b11` for −1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QoS {
    /// QoS 0 (`0b00`).
    #[default]
    AtMostOnce,
    /// QoS 1 (`0b01`).
    AtLeastOnce,
    /// QoS 2 (`0b10`).
    ExactlyOnce,
    /// QoS −1 (`0b11`): publish without a connection (§6.8).
    MinusOne,
}

impl QoS {
    /// The QoS for the two low bits of `bits` (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => QoS::AtMostOnce,
            0b01 => QoS::AtLeastOnce,
            0b10 => QoS::ExactlyOnce,
            _ => QoS::MinusOne,
        }
    }

    /// The two-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            QoS::AtMostOnce => 0b00,
            QoS::AtLeastOnce => 0b01,
            QoS::ExactlyOnce => 0b10,
            QoS::MinusOne => 0b11,
        }
    }
}

/// TopicIdType of the Flags octet (§5.3.4): what the TopicId / TopicName field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TopicIdType {
    /// `0b00`: a normal (registered) topic id, or a topic name in SUBSCRIBE / UNSUBSCRIBE.
    #[default]
    Normal,
    /// `0b01`: a pre-defined topic id.
    Predefined,
    /// `0b10`: a two-octet short topic name.
    Short,
    /// `0b11`: reserved; decoded so the gateway can answer "not supported" (0x03).
    Reserved,
}

impl TopicIdType {
    /// The type for the two low bits of `bits` (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => TopicIdType::Normal,
            0b01 => TopicIdType::Predefined,
            0b10 => TopicIdType::Short,
            _ => TopicIdType::Reserved,
        }
    }

    /// The two-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            TopicIdType::Normal => 0b00,
            TopicIdType::Predefined => 0b01,
            TopicIdType::Short => 0b10,
            TopicIdType::Reserved => 0b11,
        }
    }
}

const DUP: u8 = 0b1000_0000;
const QOS_SHIFT: u8 = 5;
const RETAIN: u8 = 0b0001_0000;
const WILL: u8 = 0b0000_1000;
const CLEAN_SESSION: u8 = 0b0000_0100;

/// The Flags octet (§5.3.4), all fields decoded whatever the message type uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// DUP (bit 7): the message is a retransmission.
    pub dup: bool,
    /// QoS (bits 6–5).
    pub qos: QoS,
    /// Retain (bit 4).
    pub retain: bool,
    /// Will (bit 3): CONNECT asks for the will topic and message prompts.
    pub will: bool,
    /// CleanSession (bit 2), which in MQTT-SN also clears the will.
    pub clean_session: bool,
    /// TopicIdType (bits 1–0).
    pub topic_id_type: TopicIdType,
}

impl Flags {
    /// Decodes a Flags octet; total (every octet is valid).
    pub const fn from_byte(byte: u8) -> Self {
        Flags {
            dup: byte & DUP != 0,
            qos: QoS::from_bits(byte >> QOS_SHIFT),
            retain: byte & RETAIN != 0,
            will: byte & WILL != 0,
            clean_session: byte & CLEAN_SESSION != 0,
            topic_id_type: TopicIdType::from_bits(byte),
        }
    }

    /// Encodes the Flags octet; the inverse of [`Flags::from_byte`].
    pub const fn to_byte(self) -> u8 {
        let mut byte = (self.qos.bits() << QOS_SHIFT) | self.topic_id_type.bits();
        if self.dup {
            byte |= DUP;
        }
        if self.retain {
            byte |= RETAIN;
        }
        if self.will {
            byte |= WILL;
        }
        if self.clean_session {
            byte |= CLEAN_SESSION;
        }
        byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flags_octet_round_trips() {
        for byte in 0..=u8::MAX {
            assert_eq!(Flags::from_byte(byte).to_byte(), byte, "{byte:#010b}");
        }
    }

    #[test]
    fn each_single_bit_maps_to_its_field() {
        let none = Flags::default();
        assert_eq!(Flags::from_byte(0), none);
        let cases = [
            (0b1000_0000, Flags { dup: true, ..none }),
            (
                0b0100_0000,
                Flags {
                    qos: QoS::ExactlyOnce,
                    ..none
                },
            ),
            (
                0b0010_0000,
                Flags {
                    qos: QoS::AtLeastOnce,
                    ..none
                },
            ),
            (
                0b0001_0000,
                Flags {
                    retain: true,
                    ..none
                },
            ),
            (0b0000_1000, Flags { will: true, ..none }),
            (
                0b0000_0100,
                Flags {
                    clean_session: true,
                    ..none
                },
            ),
            (
                0b0000_0010,
                Flags {
                    topic_id_type: TopicIdType::Short,
                    ..none
                },
            ),
            (
                0b0000_0001,
                Flags {
                    topic_id_type: TopicIdType::Predefined,
                    ..none
                },
            ),
        ];
        for (byte, flags) in cases {
            assert_eq!(Flags::from_byte(byte), flags, "{byte:#010b}");
            assert_eq!(flags.to_byte(), byte, "{flags:?}");
        }
    }

    #[test]
    fn qos_bits_cover_minus_one() {
        assert_eq!(Flags::from_byte(0b0000_0000).qos, QoS::AtMostOnce);
        assert_eq!(Flags::from_byte(0b0010_0000).qos, QoS::AtLeastOnce);
        assert_eq!(Flags::from_byte(0b0100_0000).qos, QoS::ExactlyOnce);
        assert_eq!(Flags::from_byte(0b0110_0000).qos, QoS::MinusOne);
        for qos in [
            QoS::AtMostOnce,
            QoS::AtLeastOnce,
            QoS::ExactlyOnce,
            QoS::MinusOne,
        ] {
            assert_eq!(QoS::from_bits(qos.bits()), qos);
        }
    }

    #[test]
    fn topic_id_type_bits_cover_reserved() {
        assert_eq!(Flags::from_byte(0b00).topic_id_type, TopicIdType::Normal);
        assert_eq!(
            Flags::from_byte(0b01).topic_id_type,
            TopicIdType::Predefined
        );
        assert_eq!(Flags::from_byte(0b10).topic_id_type, TopicIdType::Short);
        assert_eq!(Flags::from_byte(0b11).topic_id_type, TopicIdType::Reserved);
        for t in [
            TopicIdType::Normal,
            TopicIdType::Predefined,
            TopicIdType::Short,
            TopicIdType::Reserved,
        ] {
            assert_eq!(TopicIdType::from_bits(t.bits()), t);
        }
    }
}
