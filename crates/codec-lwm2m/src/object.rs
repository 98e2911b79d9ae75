//! LwM2M object definitions (LwM2M 1.1 Core §6.1 "Resource Model", Appendix D "Object
//! and Resource definitions"): which resources an object has and what type each value
//! is. TLV and plain text payloads carry no types, so the gateway reads them through
//! these definitions, as EMQX does with the XML files of its `xml_dir`.
//!
//! Definitions come from the built-in core objects ([`ObjectRegistry::with_core`]), from
//! OMA object XML ([`crate::object_xml`]) or from the management API's JSON
//! ([`ObjectDef::from_json`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use crate::error::ObjectJsonError;
use crate::path::Path;
use crate::value::ResourceType;

/// The operations a resource allows (OMA `LWM2M.xsd` `<Operations>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operations {
    /// No operation from the LwM2M Server (Security object resources, bootstrap only).
    None,
    /// Read.
    R,
    /// Write.
    W,
    /// Read and write.
    RW,
    /// Execute.
    E,
}

impl Operations {
    /// Parses `R`, `W`, `RW`, `E` or the empty string (no operation), case-insensitively
    /// and ignoring surrounding whitespace.
    pub fn from_name(name: &str) -> Option<Operations> {
        let trimmed = name.trim();
        Some(
            if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none") {
                Operations::None
            } else if trimmed.eq_ignore_ascii_case("r") {
                Operations::R
            } else if trimmed.eq_ignore_ascii_case("w") {
                Operations::W
            } else if trimmed.eq_ignore_ascii_case("rw") {
                Operations::RW
            } else if trimmed.eq_ignore_ascii_case("e") {
                Operations::E
            } else {
                return None;
            },
        )
    }

    /// The name as object definitions spell it (`""` for no operation).
    pub fn name(self) -> &'static str {
        match self {
            Operations::None => "",
            Operations::R => "R",
            Operations::W => "W",
            Operations::RW => "RW",
            Operations::E => "E",
        }
    }

    /// Whether the resource can be read.
    pub fn readable(self) -> bool {
        matches!(self, Operations::R | Operations::RW)
    }

    /// Whether the resource can be written.
    pub fn writable(self) -> bool {
        matches!(self, Operations::W | Operations::RW)
    }

    /// Whether the resource can be executed.
    pub fn executable(self) -> bool {
        self == Operations::E
    }
}

impl fmt::Display for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One resource of an object definition (an `<Item>` of OMA object XML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// The resource id.
    pub id: u16,
    /// The resource name (`"Manufacturer"`).
    pub name: String,
    /// The operations the resource allows.
    pub operations: Operations,
    /// Whether the resource has resource instances (`Multiple`).
    pub multiple_instances: bool,
    /// Whether a client must implement the resource.
    pub mandatory: bool,
    /// The value type; [`ResourceType::None`] for executable resources.
    pub kind: ResourceType,
    /// The `<RangeEnumeration>` text, when not empty (`"0..100"`).
    pub range: Option<String>,
    /// The `<Units>` text, when not empty (`"s"`, `"mV"`).
    pub units: Option<String>,
}

/// An object definition: its id, name and resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    /// The object id.
    pub id: u16,
    /// The object name (`"Device"`).
    pub name: String,
    /// The object version (`"1.1"`); `None` when the definition does not say (1.0).
    pub version: Option<String>,
    /// Whether the object may have more than one instance.
    pub multiple_instances: bool,
    /// Whether a client must implement the object.
    pub mandatory: bool,
    /// The object URN (`"urn:oma:lwm2m:oma:3:1.1"`), when given.
    pub urn: Option<String>,
    /// The resources by id.
    pub resources: BTreeMap<u16, ResourceDef>,
}

impl ObjectDef {
    /// The resource with this id.
    pub fn resource(&self, id: u16) -> Option<&ResourceDef> {
        self.resources.get(&id)
    }

    /// The JSON the management API shows (`/api/v5/gateways/lwm2m/objects`); the shape is
    /// stable: every key is present, absent optional values are `null`, resources are
    /// ordered by id and types are spelt as in object XML (`""` for executables).
    pub fn to_json(&self) -> Json {
        let resources: Vec<Json> = self
            .resources
            .values()
            .map(|resource| {
                json!({
                    "id": resource.id,
                    "name": resource.name,
                    "operations": resource.operations.name(),
                    "type": resource.kind.oma_name(),
                    "multiple_instances": resource.multiple_instances,
                    "mandatory": resource.mandatory,
                    "range": resource.range,
                    "units": resource.units,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "urn": self.urn,
            "multiple_instances": self.multiple_instances,
            "mandatory": self.mandatory,
            "resources": resources,
        })
    }

    /// Reads the shape [`ObjectDef::to_json`] writes. `id`, `name` and `resources` are
    /// required (and per resource `id`, `name`, `operations` and `type`); absent flags
    /// are `false` and absent strings `None`. Ids must be at most 65534 (MAX_ID is
    /// reserved) and unique.
    pub fn from_json(json: &Json) -> Result<ObjectDef, ObjectJsonError> {
        let object = json
            .as_object()
            .ok_or_else(|| ObjectJsonError::NotAnObject("object".to_owned()))?;
        let at = "object";
        let resources_json = object
            .get("resources")
            .ok_or_else(|| missing(at, "resources"))?
            .as_array()
            .ok_or_else(|| bad(at, "resources", "an array"))?;
        if resources_json.len() > usize::from(u16::MAX) {
            return Err(ObjectJsonError::TooManyResources(resources_json.len()));
        }
        let mut resources = BTreeMap::new();
        for (index, resource_json) in resources_json.iter().enumerate() {
            let at = format!("resources[{index}]");
            let resource = resource_from_json(resource_json, &at)?;
            let id = resource.id;
            if resources.insert(id, resource).is_some() {
                return Err(ObjectJsonError::DuplicateResource(id));
            }
        }
        Ok(ObjectDef {
            id: id_field(object, at)?,
            name: string_field(object, at, "name")?.ok_or_else(|| missing(at, "name"))?,
            version: string_field(object, at, "version")?,
            multiple_instances: bool_field(object, at, "multiple_instances")?,
            mandatory: bool_field(object, at, "mandatory")?,
            urn: string_field(object, at, "urn")?,
            resources,
        })
    }
}

fn resource_from_json(json: &Json, at: &str) -> Result<ResourceDef, ObjectJsonError> {
    let resource = json
        .as_object()
        .ok_or_else(|| ObjectJsonError::NotAnObject(at.to_owned()))?;
    let operations =
        string_field(resource, at, "operations")?.ok_or_else(|| missing(at, "operations"))?;
    let operations = Operations::from_name(&operations)
        .ok_or_else(|| bad(at, "operations", "one of \"R\", \"W\", \"RW\", \"E\", \"\""))?;
    let kind = string_field(resource, at, "type")?.ok_or_else(|| missing(at, "type"))?;
    let kind =
        ResourceType::from_name(&kind).ok_or_else(|| bad(at, "type", "an LwM2M data type name"))?;
    Ok(ResourceDef {
        id: id_field(resource, at)?,
        name: string_field(resource, at, "name")?.ok_or_else(|| missing(at, "name"))?,
        operations,
        multiple_instances: bool_field(resource, at, "multiple_instances")?,
        mandatory: bool_field(resource, at, "mandatory")?,
        kind,
        range: string_field(resource, at, "range")?,
        units: string_field(resource, at, "units")?,
    })
}

fn missing(at: &str, field: &'static str) -> ObjectJsonError {
    ObjectJsonError::Missing {
        at: at.to_owned(),
        field,
    }
}

fn bad(at: &str, field: &'static str, expected: &'static str) -> ObjectJsonError {
    ObjectJsonError::BadField {
        at: at.to_owned(),
        field,
        expected,
    }
}

fn id_field(map: &Map<String, Json>, at: &str) -> Result<u16, ObjectJsonError> {
    let id = map.get("id").ok_or_else(|| missing(at, "id"))?;
    id.as_u64()
        .and_then(|id| u16::try_from(id).ok())
        .filter(|id| *id <= Path::MAX_ID)
        .ok_or_else(|| bad(at, "id", "an integer in 0..=65534"))
}

/// A string field; absent and `null` are `None`.
fn string_field(
    map: &Map<String, Json>,
    at: &str,
    field: &'static str,
) -> Result<Option<String>, ObjectJsonError> {
    match map.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(bad(at, field, "a string")),
    }
}

/// A boolean field; absent and `null` are `false`.
fn bool_field(
    map: &Map<String, Json>,
    at: &str,
    field: &'static str,
) -> Result<bool, ObjectJsonError> {
    match map.get(field) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(flag)) => Ok(*flag),
        Some(_) => Err(bad(at, field, "a boolean")),
    }
}

/// The object definitions a gateway knows, by object id. Definitions are shared
/// (`Arc`) so channels can hold them while the registry is replaced.
#[derive(Debug, Clone, Default)]
pub struct ObjectRegistry {
    objects: BTreeMap<u16, Arc<ObjectDef>>,
}

impl ObjectRegistry {
    /// An empty registry.
    pub fn new() -> ObjectRegistry {
        ObjectRegistry::default()
    }

    /// A registry of the LwM2M 1.1 core objects 0 to 7
    /// ([`crate::core_objects::core_objects`]).
    pub fn with_core() -> ObjectRegistry {
        let mut registry = ObjectRegistry::new();
        for def in crate::core_objects::core_objects() {
            registry.insert(def);
        }
        registry
    }

    /// The definition of this object.
    pub fn get(&self, id: u16) -> Option<&Arc<ObjectDef>> {
        self.objects.get(&id)
    }

    /// Adds a definition, replacing (and returning) the one with the same id.
    pub fn insert(&mut self, def: ObjectDef) -> Option<Arc<ObjectDef>> {
        self.objects.insert(def.id, Arc::new(def))
    }

    /// Removes (and returns) the definition of this object.
    pub fn remove(&mut self, id: u16) -> Option<Arc<ObjectDef>> {
        self.objects.remove(&id)
    }

    /// The defined object ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.objects.keys().copied()
    }

    /// The definitions, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ObjectDef>> + '_ {
        self.objects.values()
    }

    /// How many objects are defined.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is defined.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The definition of the resource a `/o/i/r` or `/o/i/r/ri` path names (a resource
    /// instance belongs to its resource); `None` for shorter paths and unknown ids.
    pub fn resource(&self, path: &Path) -> Option<&ResourceDef> {
        let resource = path.resource_id()?;
        self.get(path.object_id())?.resource(resource)
    }

    /// The value type of the resource a `/o/i/r` or `/o/i/r/ri` path names.
    pub fn resource_type(&self, path: &Path) -> Option<ResourceType> {
        self.resource(path).map(|resource| resource.kind)
    }

    /// The value type to decode a TLV or plain text value at `path` with: the defined
    /// type, or [`ResourceType::Opaque`] (keep the octets) for an unknown resource.
    pub fn type_or_opaque(&self, path: &Path) -> ResourceType {
        self.resource_type(path).unwrap_or(ResourceType::Opaque)
    }
}

impl Extend<ObjectDef> for ObjectRegistry {
    fn extend<T: IntoIterator<Item = ObjectDef>>(&mut self, defs: T) {
        for def in defs {
            self.insert(def);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Path {
        text.parse().unwrap()
    }

    fn sample() -> ObjectDef {
        let mut resources = BTreeMap::new();
        resources.insert(
            0,
            ResourceDef {
                id: 0,
                name: "Temperature".to_owned(),
                operations: Operations::R,
                multiple_instances: false,
                mandatory: true,
                kind: ResourceType::Float,
                range: Some("-40..85".to_owned()),
                units: Some("Cel".to_owned()),
            },
        );
        resources.insert(
            1,
            ResourceDef {
                id: 1,
                name: "Reset".to_owned(),
                operations: Operations::E,
                multiple_instances: false,
                mandatory: false,
                kind: ResourceType::None,
                range: None,
                units: None,
            },
        );
        ObjectDef {
            id: 33000,
            name: "Thermometer".to_owned(),
            version: Some("1.0".to_owned()),
            multiple_instances: true,
            mandatory: false,
            urn: Some("urn:oma:lwm2m:x:33000".to_owned()),
            resources,
        }
    }

    #[test]
    fn operations_parse_and_print() {
        for ops in [
            Operations::None,
            Operations::R,
            Operations::W,
            Operations::RW,
            Operations::E,
        ] {
            assert_eq!(Operations::from_name(ops.name()), Some(ops));
        }
        assert_eq!(Operations::from_name(" rw "), Some(Operations::RW));
        assert_eq!(Operations::from_name("RWE"), None);
        assert!(Operations::RW.readable() && Operations::RW.writable());
        assert!(!Operations::E.readable() && Operations::E.executable());
    }

    #[test]
    fn registry_insert_replaces_and_remove_removes() {
        let mut registry = ObjectRegistry::new();
        assert!(registry.insert(sample()).is_none());
        let mut renamed = sample();
        renamed.name = "Thermometer v2".to_owned();
        let old = registry
            .insert(renamed)
            .expect("the first definition is returned");
        assert_eq!(old.name, "Thermometer");
        assert_eq!(registry.get(33000).unwrap().name, "Thermometer v2");
        assert_eq!(registry.ids().collect::<Vec<_>>(), vec![33000]);
        assert_eq!(registry.len(), 1);
        assert!(registry.remove(33000).is_some());
        assert!(registry.remove(33000).is_none());
        assert!(registry.is_empty());
    }

    #[test]
    fn resource_type_follows_resource_and_resource_instance_paths() {
        let mut registry = ObjectRegistry::new();
        registry.insert(sample());
        assert_eq!(
            registry.resource_type(&path("/33000/0/0")),
            Some(ResourceType::Float)
        );
        assert_eq!(
            registry.resource_type(&path("/33000/7/0/3")),
            Some(ResourceType::Float)
        );
        assert_eq!(
            registry.resource_type(&path("/33000/0/1")),
            Some(ResourceType::None)
        );
        assert_eq!(registry.resource_type(&path("/33000/0")), None);
        assert_eq!(registry.resource_type(&path("/33000")), None);
        assert_eq!(registry.resource_type(&path("/33000/0/9")), None);
        assert_eq!(registry.resource_type(&path("/33001/0/0")), None);
        assert_eq!(
            registry.type_or_opaque(&path("/33001/0/0")),
            ResourceType::Opaque
        );
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let def = sample();
        let json = def.to_json();
        assert_eq!(json["id"], 33000);
        assert_eq!(json["name"], "Thermometer");
        assert_eq!(json["version"], "1.0");
        assert_eq!(json["multiple_instances"], true);
        assert_eq!(json["mandatory"], false);
        assert_eq!(json["resources"][0]["id"], 0);
        assert_eq!(json["resources"][0]["operations"], "R");
        assert_eq!(json["resources"][0]["type"], "Float");
        assert_eq!(json["resources"][0]["units"], "Cel");
        assert_eq!(json["resources"][1]["type"], "");
        assert_eq!(json["resources"][1]["range"], Json::Null);
        assert_eq!(ObjectDef::from_json(&json).unwrap(), def);
    }

    #[test]
    fn json_defaults_absent_flags_and_strings() {
        let json = json!({"id": 5, "name": "X", "resources": [
            {"id": 1, "name": "A", "operations": "RW", "type": "Unsigned Integer"}
        ]});
        let def = ObjectDef::from_json(&json).unwrap();
        assert_eq!(def.version, None);
        assert!(!def.mandatory && !def.multiple_instances);
        let resource = def.resource(1).unwrap();
        assert_eq!(resource.kind, ResourceType::UnsignedInteger);
        assert_eq!(resource.operations, Operations::RW);
    }

    #[test]
    fn json_refuses_bad_ids_types_and_duplicates() {
        let with = |resources: Json| json!({"id": 5, "name": "X", "resources": resources});
        assert!(matches!(
            ObjectDef::from_json(&json!({"id": 65535, "name": "X", "resources": []})),
            Err(ObjectJsonError::BadField { field: "id", .. })
        ));
        assert!(matches!(
            ObjectDef::from_json(&json!({"id": -1, "name": "X", "resources": []})),
            Err(ObjectJsonError::BadField { field: "id", .. })
        ));
        assert!(matches!(
            ObjectDef::from_json(&json!({"name": "X", "resources": []})),
            Err(ObjectJsonError::Missing { field: "id", .. })
        ));
        assert!(matches!(
            ObjectDef::from_json(&with(json!([
                {"id": 1, "name": "A", "operations": "R", "type": "Quaternion"}
            ]))),
            Err(ObjectJsonError::BadField { field: "type", .. })
        ));
        assert!(matches!(
            ObjectDef::from_json(&with(json!([
                {"id": 1, "name": "A", "operations": "X", "type": "String"}
            ]))),
            Err(ObjectJsonError::BadField {
                field: "operations",
                ..
            })
        ));
        assert_eq!(
            ObjectDef::from_json(&with(json!([
                {"id": 1, "name": "A", "operations": "R", "type": "String"},
                {"id": 1, "name": "B", "operations": "R", "type": "String"}
            ]))),
            Err(ObjectJsonError::DuplicateResource(1))
        );
        assert!(matches!(
            ObjectDef::from_json(&with(json!([7]))),
            Err(ObjectJsonError::NotAnObject(_))
        ));
        let too_many: Vec<Json> = (0..65536).map(|_| Json::Null).collect();
        assert_eq!(
            ObjectDef::from_json(&with(Json::Array(too_many))),
            Err(ObjectJsonError::TooManyResources(65536))
        );
    }
}
