//! The LwM2M specification's TLV examples for the Device object (`/3/0`, LwM2M 1.0
//! §6.4.3.1 / 1.1 Core §7.4.3 examples) and the Access Control object with several
//! instances, decoded, typed, re-encoded byte for byte, and carried into every other
//! format.

use bytes::{Bytes, BytesMut};
use junction_codec_lwm2m::*;
use serde_json::json;

fn hex(text: &str) -> Bytes {
    let digits: String = text.split_whitespace().collect();
    Bytes::from(
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>(),
    )
}

fn path(text: &str) -> Path {
    text.parse().unwrap()
}

/// Device object, instance 0, as an array of resources (a read of `/3/0`).
const DEVICE: &str = "
    C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
    C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
    C8 02 09 33 34 35 30 30 30 31 32 33
    C3 03 31 2E 30
    86 06 41 00 01 41 01 05
    88 07 08 42 00 0E D8 42 01 13 88
    87 08 41 00 7D 42 01 03 84
    C1 09 64
    C1 0A 0F
    83 0B 41 00 00
    C4 0D 51 82 42 8F
    C6 0E 2B 30 32 3A 30 30
    C1 10 55";

/// The Device object's resource types (OMA object 3 definition).
fn device_type(path: &Path) -> ResourceType {
    match path.resource_id() {
        Some(0..=3 | 14 | 15 | 16) => ResourceType::String,
        Some(13) => ResourceType::Time,
        Some(_) => ResourceType::Integer,
        None => ResourceType::Opaque,
    }
}

fn device_records() -> Vec<Record> {
    let s = |p: &str, v: &str| (path(p), Value::String(v.into()));
    let i = |p: &str, v: i64| (path(p), Value::Integer(v));
    vec![
        s("/3/0/0", "Open Mobile Alliance"),
        s("/3/0/1", "Lightweight M2M Client"),
        s("/3/0/2", "345000123"),
        s("/3/0/3", "1.0"),
        i("/3/0/6/0", 1),
        i("/3/0/6/1", 5),
        i("/3/0/7/0", 3800),
        i("/3/0/7/1", 5000),
        i("/3/0/8/0", 125),
        i("/3/0/8/1", 900),
        i("/3/0/9", 100),
        i("/3/0/10", 15),
        i("/3/0/11/0", 0),
        (path("/3/0/13"), Value::Time(1_367_491_215)),
        s("/3/0/14", "+02:00"),
        s("/3/0/16", "U"),
    ]
}

#[test]
fn the_device_example_decodes_to_the_spec_values() {
    let wire = hex(DEVICE);
    let records = decode_tlv_values(&wire, &path("/3/0"), device_type).unwrap();
    assert_eq!(records, device_records());
}

#[test]
fn the_device_example_re_encodes_byte_for_byte() {
    let mut out = BytesMut::new();
    encode_tlv_values(&device_records(), &path("/3/0"), &mut out).unwrap();
    assert_eq!(out.freeze(), hex(DEVICE));
}

#[test]
fn the_device_example_wrapped_in_its_object_instance() {
    // The same resources inside one Object Instance TLV of 121 octets (`08 00 79`).
    let mut wrapped = hex("08 00 79").to_vec();
    wrapped.extend_from_slice(&hex(DEVICE));
    let wrapped = Bytes::from(wrapped);
    assert_eq!(wrapped.len() - 3, 0x79);
    for base in ["/3", "/3/0"] {
        let records = decode_tlv_values(&wrapped, &path(base), device_type).unwrap();
        assert_eq!(records, device_records(), "base {base}");
    }
    let mut out = BytesMut::new();
    encode_tlv_values(&device_records(), &path("/3"), &mut out).unwrap();
    assert_eq!(out.freeze(), wrapped);
    let tree = decode_tlv_tree(&wrapped).unwrap();
    assert_eq!(tree.len(), 1);
    assert_eq!(tree[0].kind, TlvKind::ObjectInstance);
}

#[test]
fn a_single_resource_read() {
    // GET /3/0/0 answered in TLV, and a multiple resource read GET /3/0/6.
    let records = decode_tlv_values(
        &hex("C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65"),
        &path("/3/0/0"),
        device_type,
    )
    .unwrap();
    assert_eq!(records, device_records()[..1]);
    let records = decode_tlv_values(
        &hex("86 06 41 00 01 41 01 05"),
        &path("/3/0/6"),
        device_type,
    )
    .unwrap();
    assert_eq!(records, device_records()[4..6]);
}

#[test]
fn the_access_control_example_with_several_instances() {
    // Object 2, instances 0 and 2; instance 2's ACL has resource instance 310 (16-bit id).
    let wire = hex("08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
         08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F");
    let records = decode_tlv_values(&wire, &path("/2"), |_| ResourceType::Integer).unwrap();
    let expected: Vec<Record> = [
        ("/2/0/0", 1),
        ("/2/0/1", 0),
        ("/2/0/2/127", 7),
        ("/2/0/3", 127),
        ("/2/2/0", 3),
        ("/2/2/1", 0),
        ("/2/2/2/127", 7),
        ("/2/2/2/310", 1),
        ("/2/2/3", 127),
    ]
    .into_iter()
    .map(|(p, v)| (path(p), Value::Integer(v)))
    .collect();
    assert_eq!(records, expected);
    let mut out = BytesMut::new();
    encode_tlv_values(&records, &path("/2"), &mut out).unwrap();
    assert_eq!(out.freeze(), wire);
}

#[test]
fn the_device_example_in_emqx_read_content() {
    let records = decode_tlv_values(&hex(DEVICE), &path("/3/0"), device_type).unwrap();
    let content = emqx_content(&records);
    assert_eq!(
        content[0],
        json!({"path": "/3/0/0", "value": "Open Mobile Alliance"})
    );
    assert_eq!(content[5], json!({"path": "/3/0/6/1", "value": 5}));
    assert_eq!(content[13], json!({"path": "/3/0/13", "value": 1367491215}));
    assert_eq!(content.as_array().map(Vec::len), Some(16));
}

#[test]
fn the_device_example_through_every_json_format() {
    let timed: Vec<TimedRecord> = device_records()
        .into_iter()
        .map(TimedRecord::from)
        .collect();
    // Times travel as plain numbers in the JSON formats: retype with the object's types.
    let retyped = |records: Vec<TimedRecord>| -> Vec<Record> {
        untimed(records)
            .into_iter()
            .map(|(p, v)| (p, retype(v, device_type(&p)).unwrap()))
            .collect()
    };
    let oma = encode_oma_json(&timed, &path("/3/0")).unwrap();
    assert_eq!(
        retyped(decode_oma_json(oma.as_bytes()).unwrap()),
        device_records()
    );
    let senml = encode_senml_json(&timed).unwrap();
    assert_eq!(
        retyped(decode_senml_json(senml.as_bytes()).unwrap()),
        device_records()
    );
    let cbor = encode_senml_cbor(&timed).unwrap();
    assert_eq!(retyped(decode_senml_cbor(&cbor).unwrap()), device_records());
}

#[test]
fn an_emqx_batch_write_encodes_as_tlv() {
    let command = parse_write_command(&json!({
        "basePath": "/3/0",
        "content": [
            {"path": "14", "type": "String", "value": "+02:00"},
            {"path": "13", "type": "Time", "value": 1367491215},
        ]
    }))
    .unwrap();
    let mut out = BytesMut::new();
    encode_tlv_values(&command.records, &command.base, &mut out).unwrap();
    assert_eq!(
        out.freeze(),
        hex("C6 0E 2B 30 32 3A 30 30 C4 0D 51 82 42 8F")
    );
    // EMQX writes 128 as one octet 0x80; the specification's signed form is 00 80.
    let command =
        parse_write_command(&json!({"path": "/3/0/9", "type": "Integer", "value": 128})).unwrap();
    let mut out = BytesMut::new();
    encode_tlv_values(&command.records, &command.base, &mut out).unwrap();
    assert_eq!(out.freeze(), hex("C2 09 00 80"));
}
