//! Errors, one enum per format. Every error cites the section of the specification it
//! enforces: the OMA LwM2M Technical Specification (1.0 §6.4 / 1.1 Core §7.4 "Data Formats",
//! Appendix C "Data Types"), RFC 8428 (SenML) and RFC 8949 (CBOR).
//!
//! A device payload that fails to decode is answered by the gateway as EMQX does for a
//! response it cannot translate; these errors say why, for the log.

use crate::path::Path;
use crate::value::ResourceType;

/// Why a string or id list is not an LwM2M path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has no object id (`""` or `"/"`).
    #[error("path names no object [LwM2M 1.1 Core §6.1 Resource Model: /Object/Instance/Resource/ResourceInstance]")]
    Empty,
    /// The path does not start with `/`.
    #[error("path {0:?} does not start with '/' [LwM2M 1.1 Core §6.1 Resource Model]")]
    NoLeadingSlash(String),
    /// More than four levels (object, instance, resource, resource instance).
    #[error("path has {0} levels, at most 4 [LwM2M 1.1 Core §6.1 Resource Model]")]
    TooDeep(usize),
    /// A segment that is not a canonical decimal number (empty, sign, leading zero, letters).
    #[error("path segment {0:?} is not a decimal id [LwM2M 1.1 Core §6.1 Resource Model]")]
    BadSegment(String),
    /// An id above 65535, or the reserved id 65535 (MAX_ID).
    #[error("id {0} is out of range 0..=65534 (65535 is reserved) [LwM2M 1.1 Core §6.1 Resource Model, MAX_ID]")]
    IdOutOfRange(u32),
}

/// Why a TLV payload does not decode or a record list does not encode as TLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The input ends inside a TLV's type, identifier or length field.
    #[error("TLV header truncated at offset {offset} [LwM2M 1.0 §6.4.3 / 1.1 Core §7.4.3 TLV]")]
    TruncatedHeader {
        /// Offset of the TLV in its enclosing value.
        offset: usize,
    },
    /// The declared length runs past the end of the enclosing value.
    #[error("TLV at offset {offset} declares {declared} octets but only {available} remain [LwM2M 1.0 §6.4.3 / 1.1 Core §7.4.3 TLV]")]
    LengthPastEnd {
        /// Offset of the TLV in its enclosing value.
        offset: usize,
        /// The Length field.
        declared: usize,
        /// Octets left after the header.
        available: usize,
    },
    /// An element where its type may not appear (an Object Instance inside a Multiple
    /// Resource, a Resource Instance directly under an Object Instance, …), which also
    /// bounds nesting: instance → multiple resource → resource instance is the deepest.
    #[error("TLV {kind} #{id} cannot appear under {parent} [LwM2M 1.0 §6.4.3 / 1.1 Core §7.4.3 TLV: Object Instance > Multiple Resource > Resource Instance]")]
    Misplaced {
        /// The element's type.
        kind: &'static str,
        /// The element's identifier.
        id: u16,
        /// The path the element would hang under.
        parent: Path,
    },
    /// A container holding an element its type may not hold (an Object Instance inside
    /// an Object Instance, a Resource Instance directly in an Object Instance, …), or a
    /// container type carrying a plain value. This also bounds nesting at three levels.
    #[error("TLV {inner} cannot appear inside {outer} [LwM2M 1.0 §6.4.3 / 1.1 Core §7.4.3 TLV: Object Instance > Resource | Multiple Resource > Resource Instance]")]
    BadNesting {
        /// The container's type.
        outer: &'static str,
        /// The misplaced element's type.
        inner: &'static str,
    },
    /// Elements nested deeper than the three levels TLV has.
    #[error("TLV nested deeper than 3 levels [LwM2M 1.0 §6.4.3 / 1.1 Core §7.4.3 TLV]")]
    TooDeep,
    /// An identifier of 65535, which is reserved.
    #[error("TLV identifier 65535 is reserved [LwM2M 1.1 Core §6.1 MAX_ID, §7.4.3 TLV]")]
    ReservedId,
    /// A record to encode whose path is not a resource or resource instance under the
    /// base path.
    #[error("record {path} cannot be encoded as TLV under {base} [LwM2M 1.1 Core §7.4.3 TLV]")]
    NotUnderBase {
        /// The record's path.
        path: Path,
        /// The base path of the request.
        base: Path,
    },
    /// A value longer than the 24-bit Length field allows (16 777 215 octets).
    #[error("TLV value of {0} octets exceeds 16777215 [LwM2M 1.1 Core §7.4.3 TLV: Length is at most 24 bits]")]
    TooLong(usize),
    /// A value that does not decode as the resource's type.
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// Why octets or text are not a value of the resource's data type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A binary value whose size the type does not allow (integer 1/2/4/8, float 4/8,
    /// boolean 1, objlnk 4).
    #[error("{ty:?} value of {len} octets (allowed: {allowed}) [LwM2M 1.0 Appendix C / 1.1 Core Appendix C Data Types]")]
    BadLength {
        /// The resource type.
        ty: ResourceType,
        /// Octets received.
        len: usize,
        /// The sizes the type allows.
        allowed: &'static str,
    },
    /// A boolean octet other than 0 or 1.
    #[error("boolean octet {0:#04x} is not 0 or 1 [LwM2M 1.1 Core Appendix C Data Types]")]
    BadBoolean(u8),
    /// A String or Corelnk value that is not UTF-8.
    #[error("{0:?} value is not UTF-8 [LwM2M 1.1 Core Appendix C Data Types]")]
    NotUtf8(ResourceType),
    /// Plain text that does not parse as the resource's type.
    #[error("text {text:?} is not a {ty:?} [LwM2M 1.1 Core §7.4.1 Plain Text, Appendix C]")]
    BadText {
        /// The resource type.
        ty: ResourceType,
        /// The offending text (truncated to 64 characters).
        text: String,
    },
    /// An object link not of the form `ObjectId:InstanceId`.
    #[error("object link {0:?} is not 'ObjectId:InstanceId' [LwM2M 1.1 Core Appendix C Data Types: Objlnk]")]
    BadObjLink(String),
    /// Base64 that does not decode.
    #[error("invalid base64 at offset {0} [RFC 4648 §4/§5; LwM2M 1.1 Core Appendix C: Opaque]")]
    BadBase64(usize),
    /// A value of another type than the format or command expects.
    #[error("{found} value where {expected} is expected [LwM2M 1.1 Core Appendix C Data Types]")]
    WrongType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
}

/// Why an OMA JSON (LwM2M 1.0 `application/vnd.oma.lwm2m+json`, 11543) payload does not
/// decode or encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OmaJsonError {
    /// Not JSON at all.
    #[error("not JSON: {0} [LwM2M 1.0 §6.4.4 JSON]")]
    Syntax(String),
    /// A member of the wrong JSON type or a missing required member.
    #[error("{0} [LwM2M 1.0 §6.4.4 JSON]")]
    Shape(&'static str),
    /// `bn` + `n` is not a path.
    #[error("name {name:?} is not a path: {source} [LwM2M 1.0 §6.4.4 JSON: bn + n]")]
    Name {
        /// The resolved name.
        name: String,
        /// Why it is not a path.
        source: PathError,
    },
    /// An element carries more than one value member.
    #[error("element {0} has more than one of v/sv/bv/ov [LwM2M 1.0 §6.4.4 JSON]")]
    SeveralValues(usize),
    /// A record to encode that is not under the base name.
    #[error("record {path} is not under the base name {base} [LwM2M 1.0 §6.4.4 JSON: bn + n]")]
    NotUnderBase {
        /// The record's path.
        path: Path,
        /// The base name.
        base: Path,
    },
    /// A value member that does not decode (`ov` not `a:b`, non-finite number).
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// Why a SenML JSON (110) or SenML CBOR (112) payload does not decode or encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenmlError {
    /// Not JSON at all.
    #[error("not JSON: {0} [RFC 8428 §5 JSON Representation]")]
    Json(String),
    /// Not CBOR of the subset SenML uses.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// The pack is not an array of maps.
    #[error("SenML pack must be an array of records (maps) [RFC 8428 §4, §5, §6]")]
    NotAPack,
    /// A field of the wrong type (`n` not a string, `v` not a number, …).
    #[error("record {record}: field {field} has the wrong type [RFC 8428 §4.1, Table 4]")]
    FieldType {
        /// Index of the record in the pack.
        record: usize,
        /// The field's JSON name.
        field: &'static str,
    },
    /// A must-understand field (name ending in `_`) this decoder does not know.
    #[error("record {record}: unknown must-understand field {field:?} [RFC 8428 §4.4]")]
    MustUnderstand {
        /// Index of the record in the pack.
        record: usize,
        /// The field name or label.
        field: String,
    },
    /// A `bver` above the version this decoder implements (10).
    #[error("record {record}: base version {version} is newer than 10 [RFC 8428 §4.4]")]
    Version {
        /// Index of the record in the pack.
        record: usize,
        /// The `bver` value.
        version: i64,
    },
    /// A record whose resolved name (`bn` + `n`) is empty.
    #[error("record {0} has no name (bn + n is empty) [RFC 8428 §4.5.1; LwM2M 1.1 Core §7.4.4 SenML JSON: name is the path]")]
    MissingName(usize),
    /// The resolved name is not an LwM2M path.
    #[error("record {record}: name {name:?} is not a path: {source} [LwM2M 1.1 Core §7.4.4 SenML JSON: bn + n is the path]")]
    Name {
        /// Index of the record in the pack.
        record: usize,
        /// The resolved name.
        name: String,
        /// Why it is not a path.
        source: PathError,
    },
    /// A record with more than one of `v`, `vs`, `vb`, `vd`, `vlo`.
    #[error("record {0} has more than one value field [RFC 8428 §4.2]")]
    SeveralValues(usize),
    /// A NaN or infinite number (JSON cannot carry them; refused in CBOR too so both
    /// formats decode to the same records), or base value arithmetic that overflows.
    #[error("record {0}: number is not finite or overflows [RFC 8428 §4.6 resolved records]")]
    NotFinite(usize),
    /// A value that does not decode (`vd` not base64url, `vlo` not `a:b`).
    #[error("record {record}: {source}")]
    Value {
        /// Index of the record in the pack.
        record: usize,
        /// Why the value does not decode.
        source: ValueError,
    },
}

/// Why octets are not CBOR of the subset SenML uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ends inside an item.
    #[error("CBOR item truncated at offset {0} [RFC 8949 §3]")]
    Truncated(usize),
    /// A declared length larger than the octets left (checked before any allocation).
    #[error("CBOR length {declared} at offset {offset} exceeds the {available} octets left [RFC 8949 §3]")]
    LengthPastEnd {
        /// Offset of the item.
        offset: usize,
        /// The declared count of octets or items.
        declared: u64,
        /// Octets left in the input.
        available: usize,
    },
    /// Arrays and maps nested deeper than the bound.
    #[error("CBOR nesting deeper than {0} [RFC 8949 §3; SenML needs 2: RFC 8428 §6]")]
    TooDeep(usize),
    /// Additional information 28–30, or a reserved simple value.
    #[error("CBOR reserved encoding {0:#04x} at offset {1} [RFC 8949 §3]")]
    Reserved(u8, usize),
    /// A tag, indefinite-length string or simple value outside the SenML subset.
    #[error("CBOR {0} at offset {1} is outside the subset SenML uses [RFC 8428 §6]")]
    Unsupported(&'static str, usize),
    /// A text string that is not UTF-8.
    #[error("CBOR text string at offset {0} is not UTF-8 [RFC 8949 §3.1 major type 3]")]
    NotUtf8(usize),
    /// Octets after the top-level item.
    #[error("{0} octets after the CBOR item [RFC 8949 §5.1]")]
    Trailing(usize),
    /// A `break` outside an indefinite-length array or map.
    #[error("CBOR break at offset {0} outside an indefinite-length item [RFC 8949 §3.2.1]")]
    UnexpectedBreak(usize),
}

/// Why EMQX's command JSON does not convert to records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmqxJsonError {
    /// A required member is missing or has the wrong JSON type.
    #[error("write command: {0} [EMQX LwM2M gateway: write data {{path,type,value}} or {{basePath,content}}]")]
    Shape(&'static str),
    /// A `type` outside Integer, Float, Time, String, Boolean, Opaque, Objlnk.
    #[error("unknown value type {0:?} [EMQX LwM2M gateway: Integer|Float|Time|String|Boolean|Opaque|Objlnk]")]
    UnknownType(String),
    /// A path that does not parse.
    #[error("path {text:?}: {source}")]
    Path {
        /// The path text.
        text: String,
        /// Why it does not parse.
        source: PathError,
    },
    /// A value that does not convert to its declared type.
    #[error("path {path}: {source}")]
    Value {
        /// The record's path.
        path: Path,
        /// Why the value does not convert.
        source: ValueError,
    },
}

/// Why an object definition XML document (the OMA `LWM2M.xsd` format EMQX reads from
/// `xml_dir`) is refused. Every variant that points into the document names its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectXmlError {
    /// The document is larger than the reader accepts.
    #[error("object XML of {size} octets exceeds the {max}-octet limit")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Elements nest deeper than the reader accepts.
    #[error("line {line}: element <{element}> nests deeper than {max} levels")]
    TooDeep {
        /// Line of the element that went too deep.
        line: usize,
        /// The element.
        element: String,
        /// The limit.
        max: usize,
    },
    /// More elements (or attributes on one element) than the reader accepts.
    #[error("line {line}: more than {max} {what}")]
    TooMany {
        /// Line where the limit was crossed.
        line: usize,
        /// `"elements"` or `"attributes on one element"`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A document type declaration: refused so no entity can be declared or expanded.
    #[error("line {line}: DOCTYPE and entity declarations are refused [XML 1.0 §2.8, §4.2; OMA LWM2M.xsd documents have none]")]
    DoctypeRefused {
        /// Line of the declaration.
        line: usize,
    },
    /// Malformed XML.
    #[error("line {line}: {message} [XML 1.0]")]
    Syntax {
        /// Line of the fault.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The input ends while an element is still open.
    #[error("line {line}: element <{element}> is never closed [XML 1.0 §3 element]")]
    Unclosed {
        /// Line of the start tag.
        line: usize,
        /// The open element.
        element: String,
    },
    /// An end tag that does not close the innermost open element.
    #[error("line {line}: </{found}> does not close <{expected}> [XML 1.0 §3 Element Type Match]")]
    MismatchedEnd {
        /// Line of the end tag.
        line: usize,
        /// The innermost open element.
        expected: String,
        /// The end tag's name.
        found: String,
    },
    /// An entity or character reference other than the five predefined entities and a
    /// valid numeric reference.
    #[error("line {line}: bad reference &{reference}; (only &lt; &gt; &amp; &quot; &apos; and &#N; / &#xH; are read) [XML 1.0 §4.1, §4.6]")]
    BadReference {
        /// Line of the reference.
        line: usize,
        /// The text between `&` and `;` (truncated).
        reference: String,
    },
    /// The root element is not `<LWM2M>` (or a bare `<Object>`).
    #[error("line {line}: root element <{element}> is not <LWM2M> [OMA LWM2M.xsd]")]
    NotLwm2m {
        /// Line of the root element.
        line: usize,
        /// Its name.
        element: String,
    },
    /// `<LWM2M>` holds no `<Object>`.
    #[error("line {line}: <LWM2M> defines no <Object> [OMA LWM2M.xsd]")]
    NoObject {
        /// Line of the root element.
        line: usize,
    },
    /// A required child element is absent.
    #[error("line {line}: <{parent}> has no <{element}> [OMA LWM2M.xsd]")]
    Missing {
        /// Line of the parent element.
        line: usize,
        /// The parent element.
        parent: String,
        /// The missing child (or `ID` attribute).
        element: String,
    },
    /// An element whose text is not a value the schema allows.
    #[error("line {line}: <{element}> {value:?} is not {expected} [OMA LWM2M.xsd]")]
    BadValue {
        /// Line of the element.
        line: usize,
        /// The element (or attribute).
        element: String,
        /// Its text (truncated).
        value: String,
        /// What the schema allows.
        expected: &'static str,
    },
    /// A file of the definitions directory could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// Two resources of one object with the same id.
    #[error("line {line}: object {object} defines resource {resource} twice [OMA LWM2M.xsd: Item ID is unique]")]
    DuplicateResource {
        /// Line of the second definition.
        line: usize,
        /// The object id.
        object: u16,
        /// The repeated resource id.
        resource: u16,
    },
}

/// Why a JSON object definition (the management API shape of
/// [`ObjectDef::to_json`](crate::object::ObjectDef::to_json)) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectJsonError {
    /// The definition (or a resource of it) is not a JSON object.
    #[error("{0} is not a JSON object")]
    NotAnObject(String),
    /// A required field is absent.
    #[error("{at}: missing field {field:?}")]
    Missing {
        /// Where: `object` or `resources[N]`.
        at: String,
        /// The field.
        field: &'static str,
    },
    /// A field of the wrong JSON type or out of range.
    #[error("{at}: field {field:?} must be {expected}")]
    BadField {
        /// Where: `object` or `resources[N]`.
        at: String,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// More resources than ids exist.
    #[error("{0} resources, at most 65535 [LwM2M 1.1 Core §6.1: 16-bit resource ids]")]
    TooManyResources(usize),
    /// Two resources with the same id.
    #[error("resource {0} is defined twice")]
    DuplicateResource(u16),
}
