//! OMA object definition XML as the registry publishes it (and EMQX reads from
//! `xml_dir`): a Device object parsed into the model, typed TLV decoding through the
//! registry, malformed and hostile documents refused with their line, directory loading
//! that skips bad files, and arbitrary input never panicking the reader.

use std::fs;
use std::path::PathBuf;

use bytes::Bytes;
use junction_codec_lwm2m::object_xml::{MAX_XML_DEPTH, MAX_XML_SIZE};
use junction_codec_lwm2m::*;
use proptest::prelude::*;

/// A Device object in the OMA format: a comment header, namespace attributes, CDATA
/// descriptions, empty elements in both spellings and entity references.
const DEVICE_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!--
  Test fixture written for Junction in the shape of the OMA LwM2M registry files.
-->
<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.openmobilealliance.org/tech/profiles/LWM2M-v1_1.xsd">
  <Object ObjectType="MODefinition">
    <Name>Device</Name>
    <Description1><![CDATA[Device information & actions <see spec>.]]></Description1>
    <ObjectID>3</ObjectID>
    <ObjectURN>urn:oma:lwm2m:oma:3:1.1</ObjectURN>
    <LWM2MVersion>1.1</LWM2MVersion>
    <ObjectVersion>1.1</ObjectVersion>
    <MultipleInstances>Single</MultipleInstances>
    <Mandatory>Mandatory</Mandatory>
    <Resources>
      <Item ID="0">
        <Name>Manufacturer</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>String</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description><![CDATA[Human readable manufacturer name]]></Description>
      </Item>
      <Item ID="4">
        <Name>Reboot</Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type></Type>
        <RangeEnumeration/>
        <Units/>
        <Description>Reboot the LwM2M Device.</Description>
      </Item>
      <Item ID="7">
        <Name>Power Source Voltage</Name>
        <Operations>R</Operations>
        <MultipleInstances>Multiple</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Integer</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units>mV</Units>
        <Description>Present voltage &amp; more.</Description>
      </Item>
      <Item ID="9">
        <Name>Battery Level</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Integer</Type>
        <RangeEnumeration>0..100</RangeEnumeration>
        <Units>/100</Units>
        <Description>Contains the current battery level as a percentage.</Description>
      </Item>
      <Item ID="13">
        <Name>Current Time</Name>
        <Operations>RW</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Time</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description>Current UNIX time of the LwM2M Client.</Description>
      </Item>
      <Item ID="22">
        <Name>ExtDevInfo</Name>
        <Operations>R</Operations>
        <MultipleInstances>Multiple</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Objlnk</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description>Links to extended device information.</Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
"#;

fn path(text: &str) -> Path {
    text.parse().unwrap()
}

/// One minimal object in OMA form, with `items` as its `<Resources>` content.
fn object_xml(id: &str, items: &str) -> String {
    format!(
        "<LWM2M><Object ObjectType=\"MODefinition\"><Name>Thing</Name><ObjectID>{id}</ObjectID>\
         <MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>\
         <Resources>{items}</Resources></Object></LWM2M>"
    )
}

fn item(id: &str, kind: &str) -> String {
    format!(
        "<Item ID=\"{id}\"><Name>R{id}</Name><Operations>RW</Operations>\
         <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>\
         <Type>{kind}</Type><RangeEnumeration/><Units/></Item>"
    )
}

#[test]
fn device_object_xml_parses_into_the_model() {
    let defs = parse_object_xml(DEVICE_XML).unwrap();
    assert_eq!(defs.len(), 1);
    let device = &defs[0];
    assert_eq!(device.id, 3);
    assert_eq!(device.name, "Device");
    assert_eq!(device.version.as_deref(), Some("1.1"));
    assert_eq!(device.urn.as_deref(), Some("urn:oma:lwm2m:oma:3:1.1"));
    assert!(!device.multiple_instances);
    assert!(device.mandatory);
    assert_eq!(
        device.resources.keys().copied().collect::<Vec<_>>(),
        vec![0, 4, 7, 9, 13, 22]
    );

    let manufacturer = device.resource(0).unwrap();
    assert_eq!(
        manufacturer,
        &ResourceDef {
            id: 0,
            name: "Manufacturer".to_owned(),
            operations: Operations::R,
            multiple_instances: false,
            mandatory: false,
            kind: ResourceType::String,
            range: None,
            units: None,
        }
    );
    let reboot = device.resource(4).unwrap();
    assert_eq!(reboot.operations, Operations::E);
    assert_eq!(reboot.kind, ResourceType::None);
    assert!(reboot.mandatory);
    let voltage = device.resource(7).unwrap();
    assert!(voltage.multiple_instances);
    assert_eq!(voltage.units.as_deref(), Some("mV"));
    let battery = device.resource(9).unwrap();
    assert_eq!(battery.range.as_deref(), Some("0..100"));
    assert_eq!(device.resource(13).unwrap().kind, ResourceType::Time);
    assert_eq!(device.resource(22).unwrap().kind, ResourceType::ObjLink);

    let json = device.to_json();
    assert_eq!(json["resources"][0]["name"], "Manufacturer");
    assert_eq!(json["resources"][0]["type"], "String");
    assert_eq!(&ObjectDef::from_json(&json).unwrap(), device);
}

#[test]
fn a_loaded_definition_types_tlv_values() {
    let mut registry = ObjectRegistry::new();
    for def in parse_object_xml(DEVICE_XML).unwrap() {
        registry.insert(def);
    }
    // /3/0: Battery Level 9 = 0x5F (one-octet integer), Manufacturer "AB",
    // Current Time 13 = 0x5182428F.
    let tlv = Bytes::from_static(&[
        0xC1, 0x09, 0x5F, 0xC2, 0x00, b'A', b'B', 0xC4, 0x0D, 0x51, 0x82, 0x42, 0x8F,
    ]);
    let records = decode_tlv_values(&tlv, &path("/3/0"), |p| registry.type_or_opaque(p)).unwrap();
    assert_eq!(
        records,
        vec![
            (path("/3/0/9"), Value::Integer(0x5F)),
            (path("/3/0/0"), Value::String("AB".to_owned())),
            (path("/3/0/13"), Value::Time(0x5182_428F)),
        ]
    );
}

#[test]
fn a_document_may_define_several_objects_or_be_a_bare_object() {
    let two = format!(
        "<LWM2M>{}{}</LWM2M>",
        object_xml("10", "")
            .trim_start_matches("<LWM2M>")
            .trim_end_matches("</LWM2M>"),
        object_xml("11", &item("1", "Float"))
            .trim_start_matches("<LWM2M>")
            .trim_end_matches("</LWM2M>"),
    );
    let defs = parse_object_xml(&two).unwrap();
    assert_eq!(defs.iter().map(|d| d.id).collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(defs[1].resource(1).unwrap().kind, ResourceType::Float);

    let bare = object_xml("12", &item("0", "Unsigned Integer"))
        .replace("<LWM2M>", "")
        .replace("</LWM2M>", "");
    let defs = parse_object_xml(&bare).unwrap();
    assert_eq!(defs[0].id, 12);
    assert_eq!(
        defs[0].resource(0).unwrap().kind,
        ResourceType::UnsignedInteger
    );
    assert_eq!(defs[0].version, None);
}

#[test]
fn malformed_xml_is_refused_with_its_line() {
    let unclosed = DEVICE_XML.replace("</Resources>", "");
    match parse_object_xml(&unclosed) {
        Err(ObjectXmlError::MismatchedEnd {
            expected, found, ..
        }) => {
            assert_eq!(expected, "Resources");
            assert_eq!(found, "Object");
        }
        other => panic!("expected a mismatched end tag, got {other:?}"),
    }

    let truncated = &DEVICE_XML[..DEVICE_XML.find("<Item ID=\"9\">").unwrap() + 14];
    match parse_object_xml(truncated) {
        Err(ObjectXmlError::Unclosed { element, line }) => {
            assert_eq!(element, "Item");
            assert!(line > 1);
        }
        other => panic!("expected an unclosed element, got {other:?}"),
    }

    let doctype = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\n{}",
        object_xml("3", "")
    );
    assert_eq!(
        parse_object_xml(&doctype),
        Err(ObjectXmlError::DoctypeRefused { line: 2 })
    );
    let undeclared = object_xml("3", "").replace("<Name>Thing", "<Name>&lol2;");
    assert!(matches!(
        parse_object_xml(&undeclared),
        Err(ObjectXmlError::BadReference { .. })
    ));

    let deep = format!(
        "{}{}",
        "<LWM2M>\n".repeat(MAX_XML_DEPTH + 1),
        "</LWM2M>".repeat(MAX_XML_DEPTH + 1)
    );
    match parse_object_xml(&deep) {
        Err(ObjectXmlError::TooDeep { line, max, .. }) => {
            assert_eq!(line, MAX_XML_DEPTH + 1);
            assert_eq!(max, MAX_XML_DEPTH);
        }
        other => panic!("expected too deep, got {other:?}"),
    }

    let huge = format!(
        "<LWM2M>{}</LWM2M>",
        "<!-- padding -->".repeat(MAX_XML_SIZE / 16 + 1)
    );
    assert!(matches!(
        parse_object_xml(&huge),
        Err(ObjectXmlError::TooLarge { .. })
    ));
}

#[test]
fn schema_violations_name_the_element_and_line() {
    assert!(matches!(
        parse_object_xml("<Objects/>"),
        Err(ObjectXmlError::NotLwm2m { line: 1, .. })
    ));
    assert!(matches!(
        parse_object_xml("<LWM2M>\n</LWM2M>"),
        Err(ObjectXmlError::NoObject { line: 1 })
    ));
    match parse_object_xml(&object_xml("3", "").replace("<Name>Thing</Name>", "")) {
        Err(ObjectXmlError::Missing {
            parent, element, ..
        }) => {
            assert_eq!(parent, "Object");
            assert_eq!(element, "Name");
        }
        other => panic!("expected a missing Name, got {other:?}"),
    }
    for bad_id in ["65535", "-1", "x", "", "100000"] {
        assert!(
            matches!(
                parse_object_xml(&object_xml(bad_id, "")),
                Err(ObjectXmlError::BadValue { .. })
            ),
            "object id {bad_id:?} is refused"
        );
    }
    let bad_type = object_xml("3", &item("0", "Quaternion"));
    match parse_object_xml(&bad_type) {
        Err(ObjectXmlError::BadValue { element, value, .. }) => {
            assert_eq!(element, "Type");
            assert_eq!(value, "Quaternion");
        }
        other => panic!("expected a bad type, got {other:?}"),
    }
    let bad_ops = object_xml("3", &item("0", "String").replace(">RW<", ">RWX<"));
    assert!(matches!(
        parse_object_xml(&bad_ops),
        Err(ObjectXmlError::BadValue { .. })
    ));
    let no_id = object_xml("3", &item("0", "String").replace(" ID=\"0\"", ""));
    assert!(matches!(
        parse_object_xml(&no_id),
        Err(ObjectXmlError::Missing { .. })
    ));
    let twice = object_xml(
        "3",
        &format!("{}\n{}", item("1", "String"), item("1", "Integer")),
    );
    assert_eq!(
        parse_object_xml(&twice),
        Err(ObjectXmlError::DuplicateResource {
            line: 2,
            object: 3,
            resource: 1
        })
    );
    let single_word = object_xml("3", "").replace(">Multiple<", ">Many<");
    assert!(matches!(
        parse_object_xml(&single_word),
        Err(ObjectXmlError::BadValue { .. })
    ));
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("junction-lwm2m-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_dir_reads_xml_files_and_reports_bad_ones() {
    let dir = scratch_dir("load-dir");
    fs::write(dir.join("3.xml"), DEVICE_XML).unwrap();
    fs::write(dir.join("10.XML"), object_xml("10", &item("0", "Boolean"))).unwrap();
    fs::write(dir.join("broken.xml"), "<LWM2M><Object>").unwrap();
    fs::write(dir.join("latin1.xml"), b"<LWM2M>\n\xe9</LWM2M>").unwrap();
    fs::write(dir.join("notes.txt"), "not an object").unwrap();
    fs::create_dir(dir.join("nested.xml")).unwrap();
    fs::write(dir.join("nested.xml").join("11.xml"), object_xml("11", "")).unwrap();

    let (defs, failures) = load_dir(&dir).unwrap();
    let mut ids: Vec<u16> = defs.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![3, 10]);
    let mut failed: Vec<String> = failures
        .iter()
        .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["broken.xml", "latin1.xml"]);
    let latin1 = failures
        .iter()
        .find(|(path, _)| path.ends_with("latin1.xml"))
        .unwrap();
    assert!(matches!(latin1.1, ObjectXmlError::Syntax { line: 2, .. }));

    let mut registry = ObjectRegistry::with_core();
    let core_device_resources = registry.get(3).unwrap().resources.len();
    registry.extend(defs);
    assert_eq!(registry.get(3).unwrap().resources.len(), 6);
    assert_ne!(core_device_resources, 6);
    assert!(registry.get(10).is_some());

    assert!(load_dir(dir.join("absent")).is_err());
    fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_reader(text in ".{0,400}") {
        let _ = parse_object_xml(&text);
    }

    #[test]
    fn xml_like_text_never_panics_the_reader(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("<LWM2M>"), Just("</LWM2M>"), Just("<Object>"), Just("</Object>"),
                Just("<Item ID=\"1\">"), Just("</Item>"), Just("<Type>"), Just("</Type>"),
                Just("<![CDATA["), Just("]]>"), Just("<!--"), Just("-->"), Just("<?xml"),
                Just("?>"), Just("&amp;"), Just("&#x"), Just(";"), Just("&"), Just("<"),
                Just(">"), Just("/>"), Just("\""), Just("'"), Just("="), Just(" "), Just("\n"),
                Just("<!DOCTYPE"), Just("é"), Just("Integer"), Just("3"),
            ],
            0..60,
        )
    ) {
        let _ = parse_object_xml(&parts.concat());
    }

    #[test]
    fn every_cut_short_document_is_refused(cut in 0usize..4096) {
        let end = DEVICE_XML.len().min(cut);
        if let Some(prefix) = DEVICE_XML.get(..end) {
            let result = parse_object_xml(prefix);
            if prefix.trim_end().len() < DEVICE_XML.trim_end().len() {
                prop_assert!(result.is_err());
            } else {
                prop_assert!(result.is_ok());
            }
        }
    }
}

/// Escapes text for an XML element body.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const TYPES: [&str; 10] = [
    "String",
    "Integer",
    "Unsigned Integer",
    "Float",
    "Boolean",
    "Opaque",
    "Time",
    "Objlnk",
    "Corelnk",
    "",
];

proptest! {
    #[test]
    fn generated_objects_parse_back_and_survive_json(
        id in 0u16..=65534,
        name in "[A-Za-z0-9 &<>é]{1,20}",
        resources in proptest::collection::btree_map(
            0u16..=65534,
            ("[A-Za-z0-9 &<>]{1,12}", 0usize..10, 0usize..5, any::<bool>(), any::<bool>()),
            0..20,
        ),
    ) {
        let items: String = resources
            .iter()
            .map(|(rid, (rname, kind, ops, multiple, mandatory))| {
                format!(
                    "<Item ID=\"{rid}\"><Name>{}</Name><Operations>{}</Operations>\
                     <MultipleInstances>{}</MultipleInstances><Mandatory>{}</Mandatory>\
                     <Type>{}</Type><RangeEnumeration></RangeEnumeration><Units></Units></Item>",
                    escape(rname),
                    ["", "R", "W", "RW", "E"][*ops],
                    if *multiple { "Multiple" } else { "Single" },
                    if *mandatory { "Mandatory" } else { "Optional" },
                    TYPES[*kind],
                )
            })
            .collect();
        let document = object_xml(&id.to_string(), &items)
            .replace("<Name>Thing</Name>", &format!("<Name><![CDATA[{name}]]></Name>"));
        let defs = parse_object_xml(&document).unwrap();
        prop_assert_eq!(defs.len(), 1);
        let def = &defs[0];
        prop_assert_eq!(def.id, id);
        prop_assert_eq!(&def.name, name.trim());
        prop_assert_eq!(def.resources.len(), resources.len());
        for (rid, (rname, kind, _, multiple, mandatory)) in &resources {
            let resource = def.resource(*rid).unwrap();
            prop_assert_eq!(&resource.name, rname.trim());
            prop_assert_eq!(resource.kind.oma_name(), TYPES[*kind]);
            prop_assert_eq!(resource.multiple_instances, *multiple);
            prop_assert_eq!(resource.mandatory, *mandatory);
        }
        prop_assert_eq!(&ObjectDef::from_json(&def.to_json()).unwrap(), def);
    }
}
