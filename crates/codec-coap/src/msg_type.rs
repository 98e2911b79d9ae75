//! The Type field (RFC 7252 §3, §4.2, §4.3): Confirmable, Non-confirmable, Acknowledgement, Reset.

/// The message type, two bits of the first header octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0, Confirmable: retransmitted until acknowledged (RFC 7252 §4.2).
    Confirmable,
    /// 1, Non-confirmable: sent once (RFC 7252 §4.3).
    NonConfirmable,
    /// 2, Acknowledgement of a Confirmable message (RFC 7252 §4.2).
    Acknowledgement,
    /// 3, Reset: the recipient could not process a message (RFC 7252 §4.2, §4.3).
    Reset,
}

impl MessageType {
    /// The type carried by the low two bits of `bits`.
    pub const fn from_bits(bits: u8) -> MessageType {
        match bits & 0x03 {
            0 => MessageType::Confirmable,
            1 => MessageType::NonConfirmable,
            2 => MessageType::Acknowledgement,
            _ => MessageType::Reset,
        }
    }

    /// The two bits on the wire.
    pub const fn to_bits(self) -> u8 {
        match self {
            MessageType::Confirmable => 0,
            MessageType::NonConfirmable => 1,
            MessageType::Acknowledgement => 2,
            MessageType::Reset => 3,
        }
    }

    /// The short name RFC 7252 uses (`CON`, `NON`, `ACK`, `RST`).
    pub const fn name(self) -> &'static str {
        match self {
            MessageType::Confirmable => "CON",
            MessageType::NonConfirmable => "NON",
            MessageType::Acknowledgement => "ACK",
            MessageType::Reset => "RST",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        for bits in 0..4 {
            assert_eq!(MessageType::from_bits(bits).to_bits(), bits);
        }
        assert_eq!(MessageType::from_bits(2).name(), "ACK");
    }
}
