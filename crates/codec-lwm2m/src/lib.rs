//! Sans-IO LwM2M payload codecs (OMA LwM2M 1.0 §6.4 / 1.1 Core §7.4 "Data Formats").
//!
//! Every format converts to and from one model: a list of [`Record`]s, `(Path, Value)`
//! pairs ([`TimedRecord`] where the format carries measurement times).
//!
//! | Content format | Module | Typed without the object definition? |
//! |---|---|---|
//! | 0 plain text | [`text`] | no: the caller names the [`ResourceType`] |
//! | 42 opaque | [`text`] | yes (opaque) |
//! | 11542 TLV | [`tlv`], [`tlv_value`] | no: `type_of(path)` per value |
//! | 11543 OMA JSON | [`oma_json`] | by JSON spelling; [`retype`] fixes up |
//! | 110 SenML JSON | [`senml_json`] | by field; [`retype`] fixes up |
//! | 112 SenML CBOR | [`senml_cbor`] ([`cbor`]) | by field; [`retype`] fixes up |
//!
//! Object definitions ([`object`]) say which type each resource has: the LwM2M 1.1 core
//! objects are built in ([`core_objects`]), others are read from OMA object XML
//! ([`object_xml`], EMQX's `xml_dir`) by a bounded reader that refuses DOCTYPEs.
//!
//! [`emqx`] converts records to and from the JSON EMQX's LwM2M gateway publishes and
//! accepts on its translator topics.
//!
//! Decoders never panic on input: lengths are checked before slicing or allocating,
//! TLV nesting is limited to its three levels and CBOR nesting is bounded. Errors cite
//! the specification section they enforce.

pub mod base64;
pub mod cbor;
pub mod core_objects;
pub mod emqx;
pub mod error;
pub mod object;
pub mod object_xml;
pub mod oma_json;
pub mod path;
pub mod senml;
pub mod senml_cbor;
pub mod senml_json;
pub mod text;
pub mod tlv;
pub mod tlv_value;
pub mod value;
mod xml;

pub use emqx::{emqx_content, emqx_value, emqx_write_value, parse_write_command, WriteCommand};
pub use error::{
    CborError, EmqxJsonError, ObjectJsonError, ObjectXmlError, OmaJsonError, PathError, SenmlError,
    TlvError, ValueError,
};
pub use object::{ObjectDef, ObjectRegistry, Operations, ResourceDef};
pub use object_xml::{load_dir, parse_object_xml};
pub use oma_json::{decode_oma_json, encode_oma_json};
pub use path::Path;
pub use senml_cbor::{decode_senml_cbor, encode_senml_cbor};
pub use senml_json::{decode_senml_json, encode_senml_json};
pub use text::{decode_opaque, decode_text, encode_opaque, encode_text};
pub use tlv::{
    decode_tlv, decode_tlv_tree, decode_tlv_values, encode_tlv, encode_tlv_tree, encode_tlv_values,
    tlv_tree_from_records, Tlv, TlvContent, TlvKind,
};
pub use tlv_value::{decode_tlv_value, encode_tlv_value};
pub use value::{retype, untimed, ObjLink, Record, ResourceType, TimedRecord, Value};

/// CoAP Content-Format numbers of the LwM2M data formats (IANA CoAP Content-Formats
/// registry; LwM2M 1.1 Core §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentFormat {
    /// 0, `text/plain;charset=utf-8`.
    Text,
    /// 40, `application/link-format` (discover).
    LinkFormat,
    /// 42, `application/octet-stream`.
    Opaque,
    /// 110, `application/senml+json`.
    SenmlJson,
    /// 112, `application/senml+cbor`.
    SenmlCbor,
    /// 11542, `application/vnd.oma.lwm2m+tlv`.
    Tlv,
    /// 11543, `application/vnd.oma.lwm2m+json`.
    OmaJson,
}

impl ContentFormat {
    /// The format with this Content-Format number, if it is an LwM2M one.
    pub fn from_code(code: u16) -> Option<ContentFormat> {
        Some(match code {
            0 => ContentFormat::Text,
            40 => ContentFormat::LinkFormat,
            42 => ContentFormat::Opaque,
            110 => ContentFormat::SenmlJson,
            112 => ContentFormat::SenmlCbor,
            11542 => ContentFormat::Tlv,
            11543 => ContentFormat::OmaJson,
            _ => return None,
        })
    }

    /// The Content-Format number.
    pub fn code(self) -> u16 {
        match self {
            ContentFormat::Text => 0,
            ContentFormat::LinkFormat => 40,
            ContentFormat::Opaque => 42,
            ContentFormat::SenmlJson => 110,
            ContentFormat::SenmlCbor => 112,
            ContentFormat::Tlv => 11542,
            ContentFormat::OmaJson => 11543,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_format_codes_round_trip() {
        for code in [0u16, 40, 42, 110, 112, 11542, 11543] {
            assert_eq!(
                ContentFormat::from_code(code).map(ContentFormat::code),
                Some(code)
            );
        }
        assert_eq!(ContentFormat::from_code(50), None);
    }

    #[test]
    fn public_base64_helpers() {
        assert_eq!(base64::encode_base64(b"foo"), "Zm9v");
        assert_eq!(base64::decode_base64("Zm8").unwrap(), b"fo");
    }
}
