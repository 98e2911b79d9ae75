//! Property tests: paths, TLV, text, OMA JSON and SenML JSON/CBOR survive encode → decode
//! unchanged; decoding arbitrary or mutated input never panics, and whatever decodes
//! re-encodes to something that decodes equal.

use bytes::{Bytes, BytesMut};
use junction_codec_lwm2m::cbor::{decode_cbor, encode_cbor};
use junction_codec_lwm2m::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0u16..16, 1 => 0u16..=Path::MAX_ID]
}

fn any_path() -> impl Strategy<Value = Path> {
    vec(id(), 1..=4).prop_map(|ids| Path::new(&ids).unwrap())
}

/// A resource or resource instance path in object 3.
fn value_path() -> impl Strategy<Value = Path> {
    (id(), id(), of(id())).prop_map(|(instance, resource, item)| {
        let p = Path::resource(3, instance, resource).unwrap();
        match item {
            Some(item) => p.child(item).unwrap(),
            None => p,
        }
    })
}

fn link() -> impl Strategy<Value = ObjLink> {
    (any::<u16>(), any::<u16>()).prop_map(|(object, instance)| ObjLink { object, instance })
}

/// Floats of at most 15 significant digits: serde_json's default parser (without its
/// `float_roundtrip` feature) is exact for those, and may be one ULP off beyond.
fn json_float() -> impl Strategy<Value = f64> {
    any::<i32>().prop_map(|n| f64::from(n >> 8) / 16.0)
}

fn finite_float() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite())
}

/// A value of each resource type, for formats that know the type.
fn typed_value(ty: ResourceType) -> BoxedStrategy<Value> {
    match ty {
        ResourceType::String => ".{0,12}".prop_map(Value::String).boxed(),
        ResourceType::CoreLink => ".{0,12}".prop_map(Value::CoreLink).boxed(),
        ResourceType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ResourceType::Time => any::<i64>().prop_map(Value::Time).boxed(),
        ResourceType::UnsignedInteger => any::<u64>().prop_map(Value::UnsignedInteger).boxed(),
        ResourceType::Float => finite_float().prop_map(Value::Float).boxed(),
        ResourceType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ResourceType::Opaque => vec(any::<u8>(), 0..300)
            .prop_map(|b| Value::Opaque(Bytes::from(b)))
            .boxed(),
        ResourceType::ObjLink => link().prop_map(Value::ObjLink).boxed(),
        ResourceType::None => Just(Value::None).boxed(),
    }
}

const TYPES: [ResourceType; 10] = [
    ResourceType::String,
    ResourceType::Integer,
    ResourceType::UnsignedInteger,
    ResourceType::Float,
    ResourceType::Boolean,
    ResourceType::Opaque,
    ResourceType::Time,
    ResourceType::ObjLink,
    ResourceType::CoreLink,
    ResourceType::None,
];

/// The type the "object definition" gives a path: fixed per resource id.
fn type_of(path: &Path) -> ResourceType {
    TYPES[usize::from(path.resource_id().unwrap_or(0)) % TYPES.len()]
}

fn typed_record() -> impl Strategy<Value = Record> {
    value_path().prop_flat_map(|p| typed_value(type_of(&p)).prop_map(move |v| (p, v)))
}

/// Values as the self-describing formats (SenML) decode them: no Time, no CoreLink, and
/// unsigned only above `i64::MAX`.
fn senml_value(float: BoxedStrategy<f64>) -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Integer),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UnsignedInteger),
        float.prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        vec(any::<u8>(), 0..40).prop_map(|b| Value::Opaque(Bytes::from(b))),
        link().prop_map(Value::ObjLink),
        Just(Value::None),
    ]
}

fn timed(float: BoxedStrategy<f64>) -> impl Strategy<Value = TimedRecord> {
    (any_path(), senml_value(float.clone()), of(float))
        .prop_map(|(path, value, time)| TimedRecord { path, value, time })
}

proptest! {
    #[test]
    fn paths_format_and_parse_back(path in any_path()) {
        prop_assert_eq!(Path::parse(&path.to_string()), Ok(path));
        prop_assert_eq!(Path::new(path.ids()), Ok(path));
    }

    #[test]
    fn raw_tlv_records_round_trip(
        records in vec((value_path(), vec(any::<u8>(), 0..20).prop_map(Bytes::from)), 0..20),
    ) {
        let base = Path::object(3).unwrap();
        let mut out = BytesMut::new();
        encode_tlv(&records, &base, &mut out).unwrap();
        prop_assert_eq!(decode_tlv(&out.freeze(), &base).unwrap(), records);
    }

    #[test]
    fn typed_tlv_records_round_trip(records in vec(typed_record(), 0..12)) {
        let base = Path::object(3).unwrap();
        let mut out = BytesMut::new();
        encode_tlv_values(&records, &base, &mut out).unwrap();
        prop_assert_eq!(decode_tlv_values(&out.freeze(), &base, type_of).unwrap(), records);
    }

    #[test]
    fn tlv_decoding_arbitrary_bytes_never_panics(
        data in vec(any::<u8>(), 0..200),
        base in any_path(),
    ) {
        let data = Bytes::from(data);
        if let Ok(tree) = decode_tlv_tree(&data) {
            let mut out = BytesMut::new();
            encode_tlv_tree(&tree, &mut out).unwrap();
            prop_assert_eq!(decode_tlv_tree(&out.freeze()).unwrap(), tree);
        }
        if let Ok(records) = decode_tlv(&data, &base) {
            let mut out = BytesMut::new();
            encode_tlv(&records, &base, &mut out).unwrap();
            prop_assert_eq!(decode_tlv(&out.freeze(), &base).unwrap(), records);
        }
    }

    #[test]
    fn mutated_tlv_never_panics(records in vec(typed_record(), 1..8), flips in vec((any::<usize>(), any::<u8>()), 1..4)) {
        let base = Path::object(3).unwrap();
        let mut out = BytesMut::new();
        encode_tlv_values(&records, &base, &mut out).unwrap();
        let mut wire = out.to_vec();
        for (at, byte) in flips {
            let at = at % wire.len();
            wire[at] ^= byte;
        }
        let _ = decode_tlv_values(&Bytes::from(wire), &base, type_of);
    }

    #[test]
    fn text_round_trips_every_type((ty, value) in proptest::sample::select(TYPES.to_vec()).prop_flat_map(|ty| typed_value(ty).prop_map(move |v| (ty, v)))) {
        let text = encode_text(&value).unwrap();
        prop_assert_eq!(decode_text(text.as_bytes(), ty), Ok(value));
    }

    #[test]
    fn senml_json_round_trips(records in vec(timed(json_float().boxed()), 0..10)) {
        let json = encode_senml_json(&records).unwrap();
        prop_assert_eq!(decode_senml_json(json.as_bytes()).unwrap(), records);
    }

    #[test]
    fn senml_cbor_round_trips(records in vec(timed(finite_float().boxed()), 0..10)) {
        let wire = encode_senml_cbor(&records).unwrap();
        prop_assert_eq!(decode_senml_cbor(&wire).unwrap(), records);
    }

    #[test]
    fn oma_json_round_trips(
        instance in id(),
        items in vec((id(), of(id()), senml_value(json_float().boxed()), of(json_float())), 0..10),
    ) {
        let base = Path::new(&[3, instance]).unwrap();
        let records: Vec<TimedRecord> = items
            .into_iter()
            .filter(|(_, _, value, _)| !matches!(value, Value::Opaque(_)))
            .map(|(resource, item, value, time)| {
                let p = base.child(resource).unwrap();
                let path = item.map_or(p, |i| p.child(i).unwrap());
                TimedRecord { path, value, time }
            })
            .collect();
        let json = encode_oma_json(&records, &base).unwrap();
        prop_assert_eq!(decode_oma_json(json.as_bytes()).unwrap(), records);
    }

    #[test]
    fn senml_decoding_arbitrary_bytes_never_panics(data in vec(any::<u8>(), 0..200)) {
        let _ = decode_senml_json(&data);
        if let Ok(records) = decode_senml_cbor(&data) {
            let wire = encode_senml_cbor(&records).unwrap();
            prop_assert_eq!(decode_senml_cbor(&wire).unwrap(), records);
        }
        if let Ok(item) = decode_cbor(&data, 8) {
            let mut wire = Vec::new();
            encode_cbor(&item, &mut wire);
            let again = decode_cbor(&wire, 8).unwrap();
            // NaN payloads aside, the item comes back.
            prop_assert_eq!(format!("{again:?}"), format!("{item:?}"));
        }
    }

    #[test]
    fn emqx_content_carries_every_record(records in vec(typed_record(), 0..8)) {
        let content = emqx_content(&records);
        let list = content.as_array().unwrap();
        prop_assert_eq!(list.len(), records.len());
        for ((path, _), entry) in records.iter().zip(list) {
            let expected = path.to_string();
            prop_assert_eq!(entry["path"].as_str(), Some(expected.as_str()));
        }
    }
}
