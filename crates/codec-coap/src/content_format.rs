//! Content-Format numbers (RFC 7252 §12.3 registry) used by CoAP and LwM2M payloads.

/// `text/plain; charset=utf-8` (RFC 7252 §12.3).
pub const TEXT_PLAIN: u16 = 0;
/// `application/link-format` (RFC 6690 §7.2).
pub const LINK_FORMAT: u16 = 40;
/// `application/xml` (RFC 7252 §12.3).
pub const XML: u16 = 41;
/// `application/octet-stream` (RFC 7252 §12.3).
pub const OCTET_STREAM: u16 = 42;
/// `application/exi` (RFC 7252 §12.3).
pub const EXI: u16 = 47;
/// `application/json` (RFC 7252 §12.3).
pub const JSON: u16 = 50;
/// `application/cbor` (RFC 7049 §7.4).
pub const CBOR: u16 = 60;
/// `application/senml+json` (RFC 8428 §12.3).
pub const SENML_JSON: u16 = 110;
/// `application/senml+cbor` (RFC 8428 §12.3).
pub const SENML_CBOR: u16 = 112;
/// `application/vnd.oma.lwm2m+tlv` (LwM2M 1.0 §6.4.3).
pub const LWM2M_TLV: u16 = 11542;
/// `application/vnd.oma.lwm2m+json` (LwM2M 1.0 §6.4.4).
pub const LWM2M_JSON: u16 = 11543;
/// `application/vnd.oma.lwm2m+tlv` under its pre-registration number, still sent by
/// LwM2M 1.0 clients.
pub const LWM2M_TLV_OLD: u16 = 1542;
/// `application/vnd.oma.lwm2m+json` under its pre-registration number.
pub const LWM2M_JSON_OLD: u16 = 1543;
/// `application/vnd.oma.lwm2m+text`, the pre-registration plain-text number (`1541`).
pub const LWM2M_TEXT_OLD: u16 = 1541;
/// `application/vnd.oma.lwm2m+opaque`, the pre-registration opaque number (`1544`).
pub const LWM2M_OPAQUE_OLD: u16 = 1544;

/// The media type of a registered Content-Format number this crate knows.
pub fn media_type(format: u16) -> Option<&'static str> {
    Some(match format {
        TEXT_PLAIN => "text/plain; charset=utf-8",
        LWM2M_TEXT_OLD => "application/vnd.oma.lwm2m+text",
        LWM2M_OPAQUE_OLD => "application/vnd.oma.lwm2m+opaque",
        LINK_FORMAT => "application/link-format",
        XML => "application/xml",
        OCTET_STREAM => "application/octet-stream",
        EXI => "application/exi",
        JSON => "application/json",
        CBOR => "application/cbor",
        SENML_JSON => "application/senml+json",
        SENML_CBOR => "application/senml+cbor",
        LWM2M_TLV | LWM2M_TLV_OLD => "application/vnd.oma.lwm2m+tlv",
        LWM2M_JSON | LWM2M_JSON_OLD => "application/vnd.oma.lwm2m+json",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_lwm2m_numbers_name_the_same_media_types() {
        assert_eq!(media_type(LWM2M_TLV_OLD), media_type(LWM2M_TLV));
        assert_eq!(media_type(LWM2M_JSON_OLD), media_type(LWM2M_JSON));
        assert_eq!(media_type(LINK_FORMAT), Some("application/link-format"));
        assert_eq!(media_type(9999), None);
    }
}
