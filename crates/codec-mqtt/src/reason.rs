//! Reason codes (MQTT 5.0 §2.4) and MQTT 3.x CONNACK return codes.

/// Success / normal disconnection / granted QoS 0.
pub const SUCCESS: u8 = 0x00;
/// Granted QoS 1.
pub const GRANTED_QOS_1: u8 = 0x01;
/// Granted QoS 2.
pub const GRANTED_QOS_2: u8 = 0x02;
/// Disconnect with will message.
pub const DISCONNECT_WITH_WILL: u8 = 0x04;
/// No matching subscribers.
pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
/// No subscription existed.
pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
/// Continue authentication.
pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
/// Re-authenticate.
pub const REAUTHENTICATE: u8 = 0x19;
/// Unspecified error.
pub const UNSPECIFIED_ERROR: u8 = 0x80;
/// Malformed packet.
pub const MALFORMED_PACKET: u8 = 0x81;
/// Protocol error.
pub const PROTOCOL_ERROR: u8 = 0x82;
/// Implementation specific error.
pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
/// Unsupported protocol version.
pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
/// Client identifier not valid.
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
/// Bad user name or password.
pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
/// Not authorized.
pub const NOT_AUTHORIZED: u8 = 0x87;
/// Server unavailable.
pub const SERVER_UNAVAILABLE: u8 = 0x88;
/// Server busy.
pub const SERVER_BUSY: u8 = 0x89;
/// Banned.
pub const BANNED: u8 = 0x8A;
/// Server shutting down.
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
/// Bad authentication method.
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
/// Keep alive timeout.
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
/// Session taken over.
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
/// Topic filter invalid.
pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
/// Topic name invalid.
pub const TOPIC_NAME_INVALID: u8 = 0x90;
/// Packet identifier in use.
pub const PACKET_IDENTIFIER_IN_USE: u8 = 0x91;
/// Packet identifier not found.
pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
/// Receive maximum exceeded.
pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
/// Topic alias invalid.
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
/// Packet too large.
pub const PACKET_TOO_LARGE: u8 = 0x95;
/// Message rate too high.
pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
/// Quota exceeded.
pub const QUOTA_EXCEEDED: u8 = 0x97;
/// Administrative action.
pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
/// Payload format invalid.
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
/// Retain not supported.
pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
/// QoS not supported.
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
/// Use another server.
pub const USE_ANOTHER_SERVER: u8 = 0x9C;
/// Server moved.
pub const SERVER_MOVED: u8 = 0x9D;
/// Shared subscriptions not supported.
pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
/// Connection rate exceeded.
pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
/// Maximum connect time.
pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
/// Subscription identifiers not supported.
pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
/// Wildcard subscriptions not supported.
pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;

/// MQTT 3.x CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
pub mod v3_connack {
    /// Connection accepted.
    pub const ACCEPTED: u8 = 0;
    /// Unacceptable protocol version.
    pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 1;
    /// Identifier rejected.
    pub const IDENTIFIER_REJECTED: u8 = 2;
    /// Server unavailable.
    pub const SERVER_UNAVAILABLE: u8 = 3;
    /// Bad user name or password.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 4;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// The MQTT 3.x CONNACK return code that stands for a 5.0 CONNACK reason code.
pub fn connack_v5_to_v3(code: u8) -> u8 {
    match code {
        SUCCESS => v3_connack::ACCEPTED,
        UNSUPPORTED_PROTOCOL_VERSION => v3_connack::UNACCEPTABLE_PROTOCOL_VERSION,
        CLIENT_IDENTIFIER_NOT_VALID => v3_connack::IDENTIFIER_REJECTED,
        BAD_USERNAME_OR_PASSWORD => v3_connack::BAD_USERNAME_OR_PASSWORD,
        NOT_AUTHORIZED | BANNED => v3_connack::NOT_AUTHORIZED,
        _ => v3_connack::SERVER_UNAVAILABLE,
    }
}
