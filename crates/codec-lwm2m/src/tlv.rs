//! OMA TLV, content format 11542 (`application/vnd.oma.lwm2m+tlv`; LwM2M 1.0 §6.4.3,
//! 1.1 Core §7.4.3).
//!
//! Each element is a type octet, an 8- or 16-bit identifier, a length of 0–3 octets (or
//! 3 bits in the type octet) and the value:
//!
//! ```text
//! bits 7-6  00 Object Instance | 01 Resource Instance | 10 Multiple Resource | 11 Resource with Value
//! bit 5     identifier is 16 bits (else 8)
//! bits 4-3  length field of 0 (length in bits 2-0), 1, 2 or 3 octets
//! ```
//!
//! An Object Instance holds Resources and Multiple Resources; a Multiple Resource holds
//! Resource Instances; the other two carry octets. So TLV nests at most three levels, and
//! the decoder refuses anything else before recursing. Every length is checked against
//! the enclosing value before slicing, and values are zero-copy slices of the input.
//!
//! [`decode_tlv_tree`] and [`encode_tlv_tree`] work on the element tree; [`decode_tlv`]
//! and [`encode_tlv`] on flat `(Path, octets)` lists relative to the request's path;
//! [`decode_tlv_values`] and [`encode_tlv_values`] add the typed interpretation of
//! [`crate::tlv_value`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::TlvError;
use crate::path::Path;
use crate::tlv_value::{decode_tlv_value, encode_tlv_value};
use crate::value::{Record, ResourceType};

/// The deepest nesting TLV has: instance → multiple resource → resource instance.
pub const MAX_NESTING: usize = 3;

/// The largest value the 24-bit Length field can declare.
pub const MAX_LENGTH: usize = 0xFF_FFFF;

/// The type of a TLV element (bits 7-6 of the type octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvKind {
    /// `00`: an object instance holding resources.
    ObjectInstance,
    /// `01`: one instance of a multiple resource, with a value.
    ResourceInstance,
    /// `10`: a multiple resource holding resource instances.
    MultipleResource,
    /// `11`: a single resource with a value.
    Resource,
}

impl TlvKind {
    fn from_bits(bits: u8) -> TlvKind {
        match bits & 0b11 {
            0b00 => TlvKind::ObjectInstance,
            0b01 => TlvKind::ResourceInstance,
            0b10 => TlvKind::MultipleResource,
            _ => TlvKind::Resource,
        }
    }

    fn bits(self) -> u8 {
        match self {
            TlvKind::ObjectInstance => 0b00,
            TlvKind::ResourceInstance => 0b01,
            TlvKind::MultipleResource => 0b10,
            TlvKind::Resource => 0b11,
        }
    }

    /// The specification's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            TlvKind::ObjectInstance => "Object Instance",
            TlvKind::ResourceInstance => "Resource Instance",
            TlvKind::MultipleResource => "Multiple Resource",
            TlvKind::Resource => "Resource with Value",
        }
    }

    /// Whether the element holds other elements rather than octets.
    pub fn is_container(self) -> bool {
        matches!(self, TlvKind::ObjectInstance | TlvKind::MultipleResource)
    }

    /// The depth of the path the element's identifier completes (instance 2, resource 3,
    /// resource instance 4).
    fn depth(self) -> usize {
        match self {
            TlvKind::ObjectInstance => 2,
            TlvKind::Resource | TlvKind::MultipleResource => 3,
            TlvKind::ResourceInstance => 4,
        }
    }

    /// Whether a container of this kind may hold an element of `inner` kind.
    fn may_hold(self, inner: TlvKind) -> bool {
        matches!(
            (self, inner),
            (TlvKind::ObjectInstance, TlvKind::Resource)
                | (TlvKind::ObjectInstance, TlvKind::MultipleResource)
                | (TlvKind::MultipleResource, TlvKind::ResourceInstance)
        )
    }
}

/// What a TLV element carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlvContent {
    /// The octets of a Resource or Resource Instance.
    Value(Bytes),
    /// The elements of an Object Instance or Multiple Resource.
    Children(Vec<Tlv>),
}

/// One TLV element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The element's type.
    pub kind: TlvKind,
    /// The object instance, resource or resource instance id.
    pub id: u16,
    /// Octets or nested elements, as the type says.
    pub content: TlvContent,
}

/// Decodes a TLV payload into its element tree.
pub fn decode_tlv_tree(input: &Bytes) -> Result<Vec<Tlv>, TlvError> {
    decode_level(input, None, 1)
}

/// Decodes the elements of one value; `outer` is the enclosing container, if any.
fn decode_level(input: &Bytes, outer: Option<TlvKind>, level: usize) -> Result<Vec<Tlv>, TlvError> {
    if level > MAX_NESTING {
        return Err(TlvError::TooDeep);
    }
    let mut elements = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let (kind, id, value) = read_element(input, offset)?;
        if let Some(outer) = outer {
            if !outer.may_hold(kind) {
                return Err(TlvError::BadNesting {
                    outer: outer.name(),
                    inner: kind.name(),
                });
            }
        }
        offset = value.end;
        let value = input.slice(value);
        let content = if kind.is_container() {
            TlvContent::Children(decode_level(&value, Some(kind), level + 1)?)
        } else {
            TlvContent::Value(value)
        };
        elements.push(Tlv { kind, id, content });
    }
    Ok(elements)
}

/// Reads the header at `offset`; returns the type, identifier and the value's range,
/// which is checked to lie within `input`.
fn read_element(
    input: &[u8],
    offset: usize,
) -> Result<(TlvKind, u16, std::ops::Range<usize>), TlvError> {
    let truncated = TlvError::TruncatedHeader { offset };
    let rest = input.get(offset..).ok_or(truncated.clone())?;
    let (&type_octet, rest) = rest.split_first().ok_or(truncated.clone())?;
    let kind = TlvKind::from_bits(type_octet >> 6);
    let id_len = if type_octet & 0x20 != 0 { 2 } else { 1 };
    let length_len = usize::from((type_octet >> 3) & 0b11);
    let header_rest = rest.get(..id_len + length_len).ok_or(truncated)?;
    let (id_octets, length_octets) = header_rest.split_at(id_len);
    let id = id_octets
        .iter()
        .fold(0u32, |acc, &b| acc << 8 | u32::from(b));
    let id = u16::try_from(id)
        .ok()
        .filter(|id| *id <= Path::MAX_ID)
        .ok_or(TlvError::ReservedId)?;
    let declared = if length_len == 0 {
        usize::from(type_octet & 0b111)
    } else {
        length_octets
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b))
    };
    let start = offset + 1 + id_len + length_len;
    let available = input.len() - start;
    if declared > available {
        return Err(TlvError::LengthPastEnd {
            offset,
            declared,
            available,
        });
    }
    Ok((kind, id, start..start + declared))
}

/// Appends the encoding of `elements` to `buf`: the shortest identifier and length
/// forms. Nothing is written on error.
pub fn encode_tlv_tree(elements: &[Tlv], buf: &mut BytesMut) -> Result<(), TlvError> {
    let mut out = BytesMut::new();
    encode_level(elements, None, 1, &mut out)?;
    buf.extend_from_slice(&out);
    Ok(())
}

fn encode_level(
    elements: &[Tlv],
    outer: Option<TlvKind>,
    level: usize,
    out: &mut BytesMut,
) -> Result<(), TlvError> {
    if level > MAX_NESTING {
        return Err(TlvError::TooDeep);
    }
    for element in elements {
        if let Some(outer) = outer {
            if !outer.may_hold(element.kind) {
                return Err(TlvError::BadNesting {
                    outer: outer.name(),
                    inner: element.kind.name(),
                });
            }
        }
        if element.id > Path::MAX_ID {
            return Err(TlvError::ReservedId);
        }
        match (&element.content, element.kind.is_container()) {
            (TlvContent::Value(value), false) => {
                put_header(out, element.kind, element.id, value.len())?;
                out.extend_from_slice(value);
            }
            (TlvContent::Children(children), true) => {
                let mut inner = BytesMut::new();
                encode_level(children, Some(element.kind), level + 1, &mut inner)?;
                put_header(out, element.kind, element.id, inner.len())?;
                out.extend_from_slice(&inner);
            }
            (TlvContent::Value(_), true) => {
                return Err(TlvError::BadNesting {
                    outer: element.kind.name(),
                    inner: "value",
                })
            }
            (TlvContent::Children(_), false) => {
                return Err(TlvError::BadNesting {
                    outer: element.kind.name(),
                    inner: "elements",
                })
            }
        }
    }
    Ok(())
}

fn put_header(out: &mut BytesMut, kind: TlvKind, id: u16, len: usize) -> Result<(), TlvError> {
    if len > MAX_LENGTH {
        return Err(TlvError::TooLong(len));
    }
    let wide_id = id > 0xFF;
    let length_len: u8 = match len {
        0..=7 => 0,
        8..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 3,
    };
    let mut type_octet = kind.bits() << 6 | u8::from(wide_id) << 5 | length_len << 3;
    if length_len == 0 {
        type_octet |= len as u8;
    }
    out.put_u8(type_octet);
    if wide_id {
        out.put_u16(id);
    } else {
        out.put_u8(id as u8);
    }
    let len_octets = (len as u32).to_be_bytes();
    out.extend_from_slice(&len_octets[4 - usize::from(length_len)..]);
    Ok(())
}

/// Decodes a TLV payload sent for a request on `base` into `(path, value octets)` pairs,
/// in payload order.
///
/// An element's identifier extends the path of its container (or `base` at the top). At
/// the top an element may also *be* `base` itself — the Resource `C8 00 …` answering a
/// read of `/3/0/0`, or the Object Instance `08 00 …` answering `/3/0` — when its
/// identifier equals the last id of `base`. Empty containers yield no pairs.
pub fn decode_tlv(input: &Bytes, base: &Path) -> Result<Vec<(Path, Bytes)>, TlvError> {
    let tree = decode_tlv_tree(input)?;
    let mut out = Vec::new();
    flatten(&tree, base, true, &mut out)?;
    Ok(out)
}

fn flatten(
    elements: &[Tlv],
    parent: &Path,
    top: bool,
    out: &mut Vec<(Path, Bytes)>,
) -> Result<(), TlvError> {
    for element in elements {
        let depth = element.kind.depth();
        let path = if parent.depth() + 1 == depth {
            parent.child(element.id).map_err(|_| TlvError::ReservedId)?
        } else if top && parent.depth() == depth && parent.last_id() == element.id {
            *parent
        } else {
            return Err(TlvError::Misplaced {
                kind: element.kind.name(),
                id: element.id,
                parent: *parent,
            });
        };
        match &element.content {
            TlvContent::Value(value) => out.push((path, value.clone())),
            TlvContent::Children(children) => flatten(children, &path, false, out)?,
        }
    }
    Ok(())
}

/// Builds the element tree for `(path, value octets)` pairs sent on `base`.
///
/// Every path must be a resource or resource instance under (or equal to) `base`.
/// Consecutive pairs in the same object instance or multiple resource share one
/// container, so [`decode_tlv`] of the encoding gives back the same pairs in the same
/// order. For a resource base (`/3/0/6`) the top element is that resource.
pub fn tlv_tree_from_records(records: &[(Path, Bytes)], base: &Path) -> Result<Vec<Tlv>, TlvError> {
    for (path, _) in records {
        if path.depth() < 3 || !path.starts_with(base) {
            return Err(TlvError::NotUnderBase {
                path: *path,
                base: *base,
            });
        }
    }
    let top_depth = match base.depth() {
        1 => 2,
        2 => 3,
        depth => depth,
    };
    Ok(build(records, top_depth))
}

/// The elements at `depth` for records that all share the ids above `depth`.
fn build(records: &[(Path, Bytes)], depth: usize) -> Vec<Tlv> {
    let mut elements = Vec::new();
    let mut rest = records;
    while let Some(((path, value), _)) = rest.split_first() {
        // Every record here has at least `depth` ids (checked in tlv_tree_from_records,
        // and only deeper records recurse), so the index is in bounds.
        let id = path.ids()[depth - 1];
        if path.depth() == depth {
            let kind = if depth == 3 {
                TlvKind::Resource
            } else {
                TlvKind::ResourceInstance
            };
            elements.push(Tlv {
                kind,
                id,
                content: TlvContent::Value(value.clone()),
            });
            rest = &rest[1..];
            continue;
        }
        let run = rest
            .iter()
            .take_while(|(p, _)| p.depth() > depth && p.ids()[depth - 1] == id)
            .count();
        let kind = if depth == 2 {
            TlvKind::ObjectInstance
        } else {
            TlvKind::MultipleResource
        };
        elements.push(Tlv {
            kind,
            id,
            content: TlvContent::Children(build(&rest[..run], depth + 1)),
        });
        rest = &rest[run..];
    }
    elements
}

/// Appends the TLV encoding of `(path, value octets)` pairs sent on `base` (see
/// [`tlv_tree_from_records`]). Nothing is written on error.
pub fn encode_tlv(
    records: &[(Path, Bytes)],
    base: &Path,
    buf: &mut BytesMut,
) -> Result<(), TlvError> {
    encode_tlv_tree(&tlv_tree_from_records(records, base)?, buf)
}

/// Decodes a TLV payload and interprets each value with the type `type_of` gives its
/// path (from the object definition; [`ResourceType::Opaque`] keeps the octets).
pub fn decode_tlv_values(
    input: &Bytes,
    base: &Path,
    type_of: impl Fn(&Path) -> ResourceType,
) -> Result<Vec<Record>, TlvError> {
    decode_tlv(input, base)?
        .into_iter()
        .map(|(path, raw)| Ok((path, decode_tlv_value(&raw, type_of(&path))?)))
        .collect()
}

/// Appends the TLV encoding of typed records sent on `base`.
pub fn encode_tlv_values(
    records: &[Record],
    base: &Path,
    buf: &mut BytesMut,
) -> Result<(), TlvError> {
    let raw: Vec<(Path, Bytes)> = records
        .iter()
        .map(|(path, value)| (*path, encode_tlv_value(value)))
        .collect();
    encode_tlv(&raw, base, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex: &str) -> Bytes {
        let hex: String = hex.split_whitespace().collect();
        Bytes::from(
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    fn path(text: &str) -> Path {
        text.parse().unwrap()
    }

    #[test]
    fn header_forms_are_read_and_the_shortest_written() {
        // 16-bit identifier, 8-bit length.
        let wire = bytes("E8 16 DA 01 01");
        let tree = decode_tlv_tree(&bytes("E1 16 DA 01")).unwrap();
        assert_eq!(
            tree,
            vec![Tlv {
                kind: TlvKind::Resource,
                id: 5850,
                content: TlvContent::Value(bytes("01")),
            }]
        );
        let mut out = BytesMut::new();
        encode_tlv_tree(&tree, &mut out).unwrap();
        assert_eq!(&out[..], &bytes("E1 16 DA 01")[..]);
        // The long forms decode to the same element.
        assert_eq!(decode_tlv_tree(&wire).unwrap(), tree);
        assert_eq!(decode_tlv_tree(&bytes("F0 16 DA 00 01 01")).unwrap(), tree);
        assert_eq!(
            decode_tlv_tree(&bytes("F8 16 DA 00 00 01 01")).unwrap(),
            tree
        );
    }

    #[test]
    fn lengths_pick_the_smallest_length_field() {
        for (len, header) in [
            (7usize, "C7 01"),
            (8, "C8 01 08"),
            (255, "C8 01 FF"),
            (256, "D0 01 01 00"),
            (65_536, "D8 01 01 00 00"),
        ] {
            let tree = vec![Tlv {
                kind: TlvKind::Resource,
                id: 1,
                content: TlvContent::Value(Bytes::from(vec![0u8; len])),
            }];
            let mut out = BytesMut::new();
            encode_tlv_tree(&tree, &mut out).unwrap();
            let header = bytes(header);
            assert_eq!(&out[..header.len()], &header[..], "{len}");
            assert_eq!(decode_tlv_tree(&out.freeze()).unwrap(), tree);
        }
        let huge = vec![Tlv {
            kind: TlvKind::Resource,
            id: 1,
            content: TlvContent::Value(Bytes::from(vec![0u8; MAX_LENGTH + 1])),
        }];
        let mut out = BytesMut::from(&b"x"[..]);
        assert_eq!(
            encode_tlv_tree(&huge, &mut out),
            Err(TlvError::TooLong(MAX_LENGTH + 1))
        );
        assert_eq!(&out[..], b"x", "nothing written on error");
    }

    #[test]
    fn truncated_headers_and_lengths_past_the_end_are_refused() {
        assert_eq!(
            decode_tlv_tree(&bytes("C8")),
            Err(TlvError::TruncatedHeader { offset: 0 })
        );
        assert_eq!(
            decode_tlv_tree(&bytes("C1 00 01 C8 00")),
            Err(TlvError::TruncatedHeader { offset: 3 })
        );
        assert_eq!(
            decode_tlv_tree(&bytes("E1 16")),
            Err(TlvError::TruncatedHeader { offset: 0 })
        );
        assert_eq!(
            decode_tlv_tree(&bytes("C3 00 41 42")),
            Err(TlvError::LengthPastEnd {
                offset: 0,
                declared: 3,
                available: 2
            })
        );
        assert_eq!(
            decode_tlv_tree(&bytes("D8 00 FF FF FF 00")),
            Err(TlvError::LengthPastEnd {
                offset: 0,
                declared: 0xFF_FFFF,
                available: 1
            })
        );
        // A child running past its container's end, though not past the input's.
        assert_eq!(
            decode_tlv_tree(&bytes("85 06 41 00 01 41 01 05")),
            Err(TlvError::LengthPastEnd {
                offset: 3,
                declared: 1,
                available: 0
            })
        );
        assert_eq!(
            decode_tlv_tree(&bytes("83 06 45 00 05")),
            Err(TlvError::LengthPastEnd {
                offset: 0,
                declared: 5,
                available: 1
            })
        );
        let err = decode_tlv_tree(&bytes("C3 00")).unwrap_err();
        assert!(err.to_string().contains("§7.4.3 TLV"), "{err}");
    }

    #[test]
    fn nesting_beyond_the_three_levels_is_refused() {
        // Multiple Resource inside Multiple Resource (would be a fourth level).
        assert_eq!(
            decode_tlv_tree(&bytes("08 00 07 85 06 83 00 41 00 01")),
            Err(TlvError::BadNesting {
                outer: "Multiple Resource",
                inner: "Multiple Resource"
            })
        );
        // Object Instance inside Object Instance.
        assert_eq!(
            decode_tlv_tree(&bytes("08 00 05 03 01 C1 00 01")),
            Err(TlvError::BadNesting {
                outer: "Object Instance",
                inner: "Object Instance"
            })
        );
        // Resource Instance directly in an Object Instance.
        assert_eq!(
            decode_tlv_tree(&bytes("03 00 41 00 01")),
            Err(TlvError::BadNesting {
                outer: "Object Instance",
                inner: "Resource Instance"
            })
        );
        // A deeply self-nested input fails at the second level, without recursing further.
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x08, 0x00, 0xFF]);
        }
        assert!(matches!(
            decode_tlv_tree(&Bytes::from(deep)),
            Err(TlvError::LengthPastEnd { .. } | TlvError::BadNesting { .. })
        ));
    }

    #[test]
    fn the_reserved_identifier_is_refused() {
        assert_eq!(
            decode_tlv_tree(&bytes("E1 FF FF 01")),
            Err(TlvError::ReservedId)
        );
    }

    #[test]
    fn paths_follow_the_base_of_the_request() {
        let resource = bytes("C1 09 64");
        assert_eq!(
            decode_tlv(&resource, &path("/3/0")).unwrap(),
            vec![(path("/3/0/9"), bytes("64"))]
        );
        assert_eq!(
            decode_tlv(&resource, &path("/3/0/9")).unwrap(),
            vec![(path("/3/0/9"), bytes("64"))]
        );
        assert_eq!(
            decode_tlv(&resource, &path("/3/0/10")),
            Err(TlvError::Misplaced {
                kind: "Resource with Value",
                id: 9,
                parent: path("/3/0/10")
            })
        );
        assert!(decode_tlv(&resource, &path("/3")).is_err());
        let instances = bytes("08 00 03 C1 09 64 08 01 03 C1 09 32");
        assert_eq!(
            decode_tlv(&instances, &path("/3")).unwrap(),
            vec![(path("/3/0/9"), bytes("64")), (path("/3/1/9"), bytes("32"))]
        );
        // Bare resource instances answering a read of the multiple resource.
        assert_eq!(
            decode_tlv(&bytes("41 00 01 41 01 05"), &path("/3/0/6")).unwrap(),
            vec![
                (path("/3/0/6/0"), bytes("01")),
                (path("/3/0/6/1"), bytes("05"))
            ]
        );
    }

    #[test]
    fn records_encode_under_their_base() {
        let records = vec![
            (path("/3/0/6/0"), bytes("01")),
            (path("/3/0/6/1"), bytes("05")),
        ];
        let mut out = BytesMut::new();
        encode_tlv(&records, &path("/3/0/6"), &mut out).unwrap();
        assert_eq!(&out[..], &bytes("86 06 41 00 01 41 01 05")[..]);
        let mut out = BytesMut::new();
        encode_tlv(&records, &path("/3"), &mut out).unwrap();
        assert_eq!(&out[..], &bytes("08 00 08 86 06 41 00 01 41 01 05")[..]);
        assert_eq!(decode_tlv(&out.freeze(), &path("/3")).unwrap(), records);
        assert_eq!(
            encode_tlv(&records, &path("/3/1"), &mut BytesMut::new()),
            Err(TlvError::NotUnderBase {
                path: path("/3/0/6/0"),
                base: path("/3/1")
            })
        );
        assert!(encode_tlv(
            &[(path("/3/0"), bytes("00"))],
            &path("/3"),
            &mut BytesMut::new()
        )
        .is_err());
    }

    #[test]
    fn the_encoder_refuses_inconsistent_trees() {
        let bad = vec![Tlv {
            kind: TlvKind::MultipleResource,
            id: 1,
            content: TlvContent::Value(Bytes::new()),
        }];
        assert!(encode_tlv_tree(&bad, &mut BytesMut::new()).is_err());
        let bad = vec![Tlv {
            kind: TlvKind::ObjectInstance,
            id: 1,
            content: TlvContent::Children(vec![Tlv {
                kind: TlvKind::ResourceInstance,
                id: 0,
                content: TlvContent::Value(Bytes::new()),
            }]),
        }];
        assert!(matches!(
            encode_tlv_tree(&bad, &mut BytesMut::new()),
            Err(TlvError::BadNesting { .. })
        ));
    }
}
