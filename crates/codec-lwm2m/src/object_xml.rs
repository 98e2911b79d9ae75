//! OMA object definition XML (the `LWM2M.xsd` / `LWM2M-v1_1.xsd` format of the OMA
//! LwM2M registry, which EMQX reads from its `xml_dir`) to [`ObjectDef`]s.
//!
//! ```xml
//! <LWM2M>
//!   <Object ObjectType="MODefinition">
//!     <Name>Device</Name> <ObjectID>3</ObjectID> <ObjectURN>urn:oma:lwm2m:oma:3</ObjectURN>
//!     <MultipleInstances>Single</MultipleInstances> <Mandatory>Mandatory</Mandatory>
//!     <Resources>
//!       <Item ID="0"><Name>Manufacturer</Name><Operations>R</Operations>
//!         <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>
//!         <Type>String</Type><RangeEnumeration/><Units/></Item>
//!     </Resources>
//!   </Object>
//! </LWM2M>
//! ```
//!
//! Element names are matched ignoring namespace prefixes and ASCII case; values are
//! trimmed. Descriptions and elements the model has no place for are skipped.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};

use crate::error::ObjectXmlError;
use crate::object::{ObjectDef, Operations, ResourceDef};
use crate::path::Path;
use crate::value::ResourceType;
use crate::xml::{self, Element};

pub use crate::xml::{MAX_XML_ATTRIBUTES, MAX_XML_DEPTH, MAX_XML_ELEMENTS, MAX_XML_SIZE};

/// Parses an object definition document: an `<LWM2M>` root holding one or more
/// `<Object>`s (a bare `<Object>` root is accepted too).
pub fn parse_object_xml(text: &str) -> Result<Vec<ObjectDef>, ObjectXmlError> {
    let root = xml::parse(text)?;
    if root.local_name().eq_ignore_ascii_case("Object") {
        return Ok(vec![object(&root)?]);
    }
    if !root.local_name().eq_ignore_ascii_case("LWM2M") {
        return Err(ObjectXmlError::NotLwm2m {
            line: root.line,
            element: root.name,
        });
    }
    let objects = root
        .children_named("Object")
        .map(object)
        .collect::<Result<Vec<_>, _>>()?;
    if objects.is_empty() {
        return Err(ObjectXmlError::NoObject { line: root.line });
    }
    Ok(objects)
}

/// Reads every `*.xml` file (any case of the extension) directly in `dir`, in file name
/// order. Files that fail to read or parse are skipped and returned with their error,
/// so one bad file does not stop a gateway from starting; only an unreadable directory
/// is an error. When two files define one object id, both are returned in order, so
/// inserting them into an [`ObjectRegistry`](crate::object::ObjectRegistry) keeps the
/// later one.
#[allow(clippy::type_complexity)]
pub fn load_dir(
    dir: impl AsRef<FsPath>,
) -> Result<(Vec<ObjectDef>, Vec<(PathBuf, ObjectXmlError)>), io::Error> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_xml = path
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| extension.eq_ignore_ascii_case("xml"));
        if is_xml && fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            files.push(path);
        }
    }
    files.sort();

    let mut objects = Vec::new();
    let mut failures = Vec::new();
    for path in files {
        match read_file(&path).and_then(|text| parse_object_xml(&text)) {
            Ok(defs) => objects.extend(defs),
            Err(error) => failures.push((path, error)),
        }
    }
    Ok((objects, failures))
}

/// Reads at most [`MAX_XML_SIZE`] octets (plus one, to tell a larger file) as UTF-8.
fn read_file(path: &FsPath) -> Result<String, ObjectXmlError> {
    let file = fs::File::open(path).map_err(|error| ObjectXmlError::Io(error.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_XML_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ObjectXmlError::Io(error.to_string()))?;
    if bytes.len() > MAX_XML_SIZE {
        return Err(ObjectXmlError::TooLarge {
            size: bytes.len(),
            max: MAX_XML_SIZE,
        });
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let line = 1 + error
            .as_bytes()
            .get(..valid)
            .map_or(0, |prefix| prefix.iter().filter(|b| **b == b'\n').count());
        ObjectXmlError::Syntax {
            line,
            message: "the file is not UTF-8".to_owned(),
        }
    })
}

fn object(element: &Element) -> Result<ObjectDef, ObjectXmlError> {
    let id = object_id(required(element, "ObjectID")?)?;
    let mut resources = BTreeMap::new();
    if let Some(list) = element.child("Resources") {
        for item in list.children_named("Item") {
            let resource = resource(item)?;
            if resources.contains_key(&resource.id) {
                return Err(ObjectXmlError::DuplicateResource {
                    line: item.line,
                    object: id,
                    resource: resource.id,
                });
            }
            resources.insert(resource.id, resource);
        }
    }
    Ok(ObjectDef {
        id,
        name: text(required(element, "Name")?).to_owned(),
        version: optional(element, "ObjectVersion"),
        multiple_instances: multiple_instances(required(element, "MultipleInstances")?)?,
        mandatory: mandatory(required(element, "Mandatory")?)?,
        urn: optional(element, "ObjectURN"),
        resources,
    })
}

fn resource(item: &Element) -> Result<ResourceDef, ObjectXmlError> {
    let raw_id = item
        .attribute("ID")
        .ok_or_else(|| ObjectXmlError::Missing {
            line: item.line,
            parent: item.name.clone(),
            element: "ID attribute".to_owned(),
        })?;
    let id = parse_id(raw_id).ok_or_else(|| bad(item, "Item ID", raw_id, "an id in 0..=65534"))?;

    let operations_element = required(item, "Operations")?;
    let operations = Operations::from_name(&operations_element.text).ok_or_else(|| {
        bad(
            operations_element,
            "Operations",
            &operations_element.text,
            "R, W, RW, E or empty",
        )
    })?;
    let type_element = required(item, "Type")?;
    let kind = ResourceType::from_name(text(type_element)).ok_or_else(|| {
        bad(
            type_element,
            "Type",
            &type_element.text,
            "String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk or empty",
        )
    })?;
    Ok(ResourceDef {
        id,
        name: text(required(item, "Name")?).to_owned(),
        operations,
        multiple_instances: multiple_instances(required(item, "MultipleInstances")?)?,
        mandatory: mandatory(required(item, "Mandatory")?)?,
        kind,
        range: optional(item, "RangeEnumeration"),
        units: optional(item, "Units"),
    })
}

fn required<'a>(parent: &'a Element, name: &str) -> Result<&'a Element, ObjectXmlError> {
    parent.child(name).ok_or_else(|| ObjectXmlError::Missing {
        line: parent.line,
        parent: parent.name.clone(),
        element: name.to_owned(),
    })
}

/// The trimmed text of an optional child; absent and empty are `None`.
fn optional(parent: &Element, name: &str) -> Option<String> {
    parent
        .child(name)
        .map(text)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

fn text(element: &Element) -> &str {
    element.text.trim()
}

fn bad(element: &Element, name: &str, value: &str, expected: &'static str) -> ObjectXmlError {
    ObjectXmlError::BadValue {
        line: element.line,
        element: name.to_owned(),
        value: value.trim().chars().take(64).collect(),
        expected,
    }
}

fn parse_id(text: &str) -> Option<u16> {
    let text = text.trim();
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|id| *id <= Path::MAX_ID)
}

fn object_id(element: &Element) -> Result<u16, ObjectXmlError> {
    parse_id(&element.text)
        .ok_or_else(|| bad(element, "ObjectID", &element.text, "an id in 0..=65534"))
}

fn multiple_instances(element: &Element) -> Result<bool, ObjectXmlError> {
    let value = text(element);
    if value.eq_ignore_ascii_case("Multiple") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("Single") {
        Ok(false)
    } else {
        Err(bad(
            element,
            "MultipleInstances",
            value,
            "Single or Multiple",
        ))
    }
}

fn mandatory(element: &Element) -> Result<bool, ObjectXmlError> {
    let value = text(element);
    if value.eq_ignore_ascii_case("Mandatory") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("Optional") {
        Ok(false)
    } else {
        Err(bad(element, "Mandatory", value, "Mandatory or Optional"))
    }
}
