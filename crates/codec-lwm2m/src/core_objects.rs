//! The LwM2M 1.1 core objects (LwM2M 1.1 Core Appendix D and E, OMA LwM2M registry),
//! built in so a gateway types TLV values of objects 0 to 7 without any XML file:
//!
//! | Id | Object | Version |
//! |---|---|---|
//! | 0 | LWM2M Security | 1.1 |
//! | 1 | LwM2M Server | 1.1 |
//! | 2 | LwM2M Access Control | 1.0 |
//! | 3 | Device | 1.1 |
//! | 4 | Connectivity Monitoring | 1.1 |
//! | 5 | Firmware Update | 1.1 |
//! | 6 | Location | 1.0 |
//! | 7 | Connectivity Statistics | 1.0 |
//!
//! A definition loaded from `xml_dir` for the same id replaces the built-in one.

use std::collections::BTreeMap;

use crate::object::{ObjectDef, Operations, ResourceDef};
use crate::value::ResourceType;

use Instances::{Multiple, Single};
use Operations::{E, R, RW, W};
use Requirement::{Mandatory, Optional};
use ResourceType::{
    Boolean, Float, Integer, ObjLink, Opaque, String as Str, Time, UnsignedInteger as Unsigned,
};

/// Whether an object or resource has one instance or several.
#[derive(Clone, Copy)]
enum Instances {
    Single,
    Multiple,
}

/// Whether a client must implement an object or resource.
#[derive(Clone, Copy)]
enum Requirement {
    Mandatory,
    Optional,
}

/// One row of a resource table.
struct Row {
    id: u16,
    name: &'static str,
    operations: Operations,
    instances: Instances,
    requirement: Requirement,
    kind: ResourceType,
    range: &'static str,
    units: &'static str,
}

/// A resource row; `range` and `units` as object XML has them (`""` when none).
#[allow(clippy::too_many_arguments)]
const fn row(
    id: u16,
    name: &'static str,
    operations: Operations,
    instances: Instances,
    requirement: Requirement,
    kind: ResourceType,
    range: &'static str,
    units: &'static str,
) -> Row {
    Row {
        id,
        name,
        operations,
        instances,
        requirement,
        kind,
        range,
        units,
    }
}

/// An executable resource: no value type, range or units.
const fn exec(id: u16, name: &'static str, requirement: Requirement) -> Row {
    row(id, name, E, Single, requirement, ResourceType::None, "", "")
}

/// No operation from an LwM2M Server: the Security object is for bootstrap only.
const NONE: Operations = Operations::None;

/// Object 0: security data of LwM2M (Bootstrap-)Server accounts.
#[rustfmt::skip]
const SECURITY: &[Row] = &[
    row(0, "LWM2M Server URI", NONE, Single, Mandatory, Str, "0..255 bytes", ""),
    row(1, "Bootstrap-Server", NONE, Single, Mandatory, Boolean, "", ""),
    row(2, "Security Mode", NONE, Single, Mandatory, Integer, "0..4", ""),
    row(3, "Public Key or Identity", NONE, Single, Mandatory, Opaque, "", ""),
    row(4, "Server Public Key", NONE, Single, Mandatory, Opaque, "", ""),
    row(5, "Secret Key", NONE, Single, Mandatory, Opaque, "", ""),
    row(6, "SMS Security Mode", NONE, Single, Optional, Integer, "0..255", ""),
    row(7, "SMS Binding Key Parameters", NONE, Single, Optional, Opaque, "6 bytes", ""),
    row(8, "SMS Binding Secret Key(s)", NONE, Single, Optional, Opaque, "16-32-48 bytes", ""),
    row(9, "LwM2M Server SMS Number", NONE, Single, Optional, Str, "", ""),
    row(10, "Short Server ID", NONE, Single, Optional, Integer, "1..65534", ""),
    row(11, "Client Hold Off Time", NONE, Single, Optional, Integer, "", "s"),
    row(12, "Bootstrap-Server Account Timeout", NONE, Single, Optional, Integer, "", "s"),
    row(13, "Matching Type", NONE, Single, Optional, Unsigned, "0..3", ""),
    row(14, "SNI", NONE, Single, Optional, Str, "", ""),
    row(15, "Certificate Usage", NONE, Single, Optional, Unsigned, "0..3", ""),
    row(16, "DTLS/TLS Ciphersuite", NONE, Multiple, Optional, Unsigned, "", ""),
    row(17, "OSCORE Security Mode", NONE, Single, Optional, ObjLink, "", ""),
];

/// Object 1: an LwM2M Server account.
#[rustfmt::skip]
const SERVER: &[Row] = &[
    row(0, "Short Server ID", R, Single, Mandatory, Integer, "1..65534", ""),
    row(1, "Lifetime", RW, Single, Mandatory, Integer, "", "s"),
    row(2, "Default Minimum Period", RW, Single, Optional, Integer, "", "s"),
    row(3, "Default Maximum Period", RW, Single, Optional, Integer, "", "s"),
    exec(4, "Disable", Optional),
    row(5, "Disable Timeout", RW, Single, Optional, Integer, "", "s"),
    row(6, "Notification Storing When Disabled or Offline", RW, Single, Mandatory, Boolean, "", ""),
    row(7, "Binding", RW, Single, Mandatory, Str, "", ""),
    exec(8, "Registration Update Trigger", Mandatory),
    exec(9, "Bootstrap-Request Trigger", Optional),
    row(10, "APN Link", RW, Single, Optional, ObjLink, "", ""),
    row(11, "TLS-DTLS Alert Code", R, Single, Optional, Unsigned, "0..255", ""),
    row(12, "Last Bootstrapped", R, Single, Optional, Time, "", ""),
    row(13, "Registration Priority Order", R, Single, Optional, Unsigned, "", ""),
    row(14, "Initial Registration Delay Timer", RW, Single, Optional, Unsigned, "", "s"),
    row(15, "Registration Failure Block", R, Single, Optional, Boolean, "", ""),
    row(16, "Bootstrap on Registration Failure", R, Single, Optional, Boolean, "", ""),
    row(17, "Communication Retry Count", RW, Single, Optional, Unsigned, "", ""),
    row(18, "Communication Retry Timer", RW, Single, Optional, Unsigned, "", "s"),
    row(19, "Communication Sequence Delay Timer", RW, Single, Optional, Unsigned, "", "s"),
    row(20, "Communication Sequence Retry Count", RW, Single, Optional, Unsigned, "", ""),
    row(21, "Trigger", RW, Single, Optional, Boolean, "", ""),
    row(22, "Preferred Transport", RW, Single, Optional, Str, "", ""),
    row(23, "Mute Send", RW, Single, Optional, Boolean, "", ""),
];

/// Object 2: which server may do what on one object instance.
#[rustfmt::skip]
const ACCESS_CONTROL: &[Row] = &[
    row(0, "Object ID", R, Single, Mandatory, Integer, "1..65534", ""),
    row(1, "Object Instance ID", R, Single, Mandatory, Integer, "0..65535", ""),
    row(2, "ACL", RW, Multiple, Optional, Integer, "16-bit", ""),
    row(3, "Access Control Owner", RW, Single, Mandatory, Integer, "0..65535", ""),
];

/// Object 3: device information and actions.
#[rustfmt::skip]
const DEVICE: &[Row] = &[
    row(0, "Manufacturer", R, Single, Optional, Str, "", ""),
    row(1, "Model Number", R, Single, Optional, Str, "", ""),
    row(2, "Serial Number", R, Single, Optional, Str, "", ""),
    row(3, "Firmware Version", R, Single, Optional, Str, "", ""),
    exec(4, "Reboot", Mandatory),
    exec(5, "Factory Reset", Optional),
    row(6, "Available Power Sources", R, Multiple, Optional, Integer, "0..7", ""),
    row(7, "Power Source Voltage", R, Multiple, Optional, Integer, "", "mV"),
    row(8, "Power Source Current", R, Multiple, Optional, Integer, "", "mA"),
    row(9, "Battery Level", R, Single, Optional, Integer, "0..100", "/100"),
    row(10, "Memory Free", R, Single, Optional, Integer, "", "KB"),
    row(11, "Error Code", R, Multiple, Mandatory, Integer, "0..32", ""),
    exec(12, "Reset Error Code", Optional),
    row(13, "Current Time", RW, Single, Optional, Time, "", ""),
    row(14, "UTC Offset", RW, Single, Optional, Str, "", ""),
    row(15, "Timezone", RW, Single, Optional, Str, "", ""),
    row(16, "Supported Binding and Modes", R, Single, Mandatory, Str, "", ""),
    row(17, "Device Type", R, Single, Optional, Str, "", ""),
    row(18, "Hardware Version", R, Single, Optional, Str, "", ""),
    row(19, "Software Version", R, Single, Optional, Str, "", ""),
    row(20, "Battery Status", R, Single, Optional, Integer, "0..6", ""),
    row(21, "Memory Total", R, Single, Optional, Integer, "", "KB"),
    row(22, "ExtDevInfo", R, Multiple, Optional, ObjLink, "", ""),
];

/// Object 4: network bearer, signal and addresses.
#[rustfmt::skip]
const CONNECTIVITY_MONITORING: &[Row] = &[
    row(0, "Network Bearer", R, Single, Mandatory, Integer, "", ""),
    row(1, "Available Network Bearer", R, Multiple, Mandatory, Integer, "", ""),
    row(2, "Radio Signal Strength", R, Single, Mandatory, Integer, "", "dBm"),
    row(3, "Link Quality", R, Single, Optional, Integer, "", ""),
    row(4, "IP Addresses", R, Multiple, Mandatory, Str, "", ""),
    row(5, "Router IP Addresses", R, Multiple, Optional, Str, "", ""),
    row(6, "Link Utilization", R, Single, Optional, Integer, "0..100", "/100"),
    row(7, "APN", R, Multiple, Optional, Str, "", ""),
    row(8, "Cell ID", R, Single, Optional, Integer, "", ""),
    row(9, "SMNC", R, Single, Optional, Integer, "", ""),
    row(10, "SMCC", R, Single, Optional, Integer, "", ""),
    row(11, "SignalSNR", R, Single, Optional, Integer, "", "dB"),
    row(12, "LAC", R, Single, Optional, Integer, "", ""),
];

/// Object 5: firmware download and update.
#[rustfmt::skip]
const FIRMWARE_UPDATE: &[Row] = &[
    row(0, "Package", W, Single, Mandatory, Opaque, "", ""),
    row(1, "Package URI", RW, Single, Mandatory, Str, "0..255 bytes", ""),
    exec(2, "Update", Mandatory),
    row(3, "State", R, Single, Mandatory, Integer, "0..3", ""),
    row(5, "Update Result", R, Single, Mandatory, Integer, "0..9", ""),
    row(6, "PkgName", R, Single, Optional, Str, "0..255 bytes", ""),
    row(7, "PkgVersion", R, Single, Optional, Str, "0..255 bytes", ""),
    row(8, "Firmware Update Protocol Support", R, Multiple, Optional, Integer, "0..5", ""),
    row(9, "Firmware Update Delivery Method", R, Single, Mandatory, Integer, "0..2", ""),
    exec(10, "Cancel", Optional),
    row(11, "Severity", RW, Single, Optional, Integer, "0..2", ""),
    row(12, "Last State Change Time", R, Single, Optional, Time, "", ""),
    row(13, "Maximum Defer Period", RW, Single, Optional, Unsigned, "", "s"),
];

/// Object 6: geographic position.
#[rustfmt::skip]
const LOCATION: &[Row] = &[
    row(0, "Latitude", R, Single, Mandatory, Float, "", "lat"),
    row(1, "Longitude", R, Single, Mandatory, Float, "", "lon"),
    row(2, "Altitude", R, Single, Optional, Float, "", "m"),
    row(3, "Radius", R, Single, Optional, Float, "", "m"),
    row(4, "Velocity", R, Single, Optional, Opaque, "", ""),
    row(5, "Timestamp", R, Single, Mandatory, Time, "", ""),
    row(6, "Speed", R, Single, Optional, Float, "", "m/s"),
];

/// Object 7: traffic counters over a collection period.
#[rustfmt::skip]
const CONNECTIVITY_STATISTICS: &[Row] = &[
    row(0, "SMS Tx Counter", R, Single, Optional, Integer, "", ""),
    row(1, "SMS Rx Counter", R, Single, Optional, Integer, "", ""),
    row(2, "Tx Data", R, Single, Optional, Integer, "", "KB"),
    row(3, "Rx Data", R, Single, Optional, Integer, "", "KB"),
    row(4, "Max Message Size", R, Single, Optional, Integer, "", "B"),
    row(5, "Average Message Size", R, Single, Optional, Integer, "", "B"),
    exec(6, "Start", Mandatory),
    exec(7, "Stop", Mandatory),
    row(8, "Collection Period", RW, Single, Optional, Integer, "", "s"),
];

/// One object of the core table.
struct Object {
    id: u16,
    name: &'static str,
    version: &'static str,
    instances: Instances,
    requirement: Requirement,
    resources: &'static [Row],
}

const CORE: &[Object] = &[
    Object {
        id: 0,
        name: "LWM2M Security",
        version: "1.1",
        instances: Multiple,
        requirement: Mandatory,
        resources: SECURITY,
    },
    Object {
        id: 1,
        name: "LwM2M Server",
        version: "1.1",
        instances: Multiple,
        requirement: Mandatory,
        resources: SERVER,
    },
    Object {
        id: 2,
        name: "LwM2M Access Control",
        version: "1.0",
        instances: Multiple,
        requirement: Optional,
        resources: ACCESS_CONTROL,
    },
    Object {
        id: 3,
        name: "Device",
        version: "1.1",
        instances: Single,
        requirement: Mandatory,
        resources: DEVICE,
    },
    Object {
        id: 4,
        name: "Connectivity Monitoring",
        version: "1.1",
        instances: Single,
        requirement: Optional,
        resources: CONNECTIVITY_MONITORING,
    },
    Object {
        id: 5,
        name: "Firmware Update",
        version: "1.1",
        instances: Single,
        requirement: Optional,
        resources: FIRMWARE_UPDATE,
    },
    Object {
        id: 6,
        name: "Location",
        version: "1.0",
        instances: Single,
        requirement: Optional,
        resources: LOCATION,
    },
    Object {
        id: 7,
        name: "Connectivity Statistics",
        version: "1.0",
        instances: Single,
        requirement: Optional,
        resources: CONNECTIVITY_STATISTICS,
    },
];

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The built-in definitions of the core objects 0 to 7, by ascending id.
pub fn core_objects() -> Vec<ObjectDef> {
    CORE.iter()
        .map(|object| ObjectDef {
            id: object.id,
            name: object.name.to_owned(),
            version: Some(object.version.to_owned()),
            multiple_instances: matches!(object.instances, Multiple),
            mandatory: matches!(object.requirement, Mandatory),
            urn: Some(if object.version == "1.0" {
                format!("urn:oma:lwm2m:oma:{}", object.id)
            } else {
                format!("urn:oma:lwm2m:oma:{}:{}", object.id, object.version)
            }),
            resources: object
                .resources
                .iter()
                .map(|row| {
                    let resource = ResourceDef {
                        id: row.id,
                        name: row.name.to_owned(),
                        operations: row.operations,
                        multiple_instances: matches!(row.instances, Multiple),
                        mandatory: matches!(row.requirement, Mandatory),
                        kind: row.kind,
                        range: non_empty(row.range),
                        units: non_empty(row.units),
                    };
                    (row.id, resource)
                })
                .collect::<BTreeMap<_, _>>(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectRegistry;
    use crate::path::Path;

    fn type_at(registry: &ObjectRegistry, path: &str) -> Option<ResourceType> {
        registry.resource_type(&path.parse::<Path>().unwrap())
    }

    #[test]
    fn core_objects_are_zero_to_seven_with_unique_sorted_resource_ids() {
        let registry = ObjectRegistry::with_core();
        assert_eq!(
            registry.ids().collect::<Vec<_>>(),
            (0..=7).collect::<Vec<_>>()
        );
        for (object, table) in CORE.iter().zip(CORE.iter().map(|o| o.resources)) {
            let ids: Vec<u16> = table.iter().map(|row| row.id).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                ids, sorted,
                "object {} rows are unique and ascending",
                object.id
            );
            assert_eq!(registry.get(object.id).unwrap().resources.len(), ids.len());
        }
    }

    #[test]
    fn core_resource_types_match_the_specification() {
        let registry = ObjectRegistry::with_core();
        assert_eq!(type_at(&registry, "/3/0/0"), Some(ResourceType::String));
        assert_eq!(type_at(&registry, "/3/0/13"), Some(ResourceType::Time));
        assert_eq!(type_at(&registry, "/1/0/1"), Some(ResourceType::Integer));
        assert_eq!(type_at(&registry, "/5/0/0"), Some(ResourceType::Opaque));
        assert_eq!(type_at(&registry, "/3/0/4"), Some(ResourceType::None));
        assert_eq!(type_at(&registry, "/3/0/11/0"), Some(ResourceType::Integer));
        assert_eq!(type_at(&registry, "/6/0/0"), Some(ResourceType::Float));
        assert_eq!(type_at(&registry, "/0/0/3"), Some(ResourceType::Opaque));
        assert_eq!(type_at(&registry, "/1/0/10"), Some(ResourceType::ObjLink));
        assert_eq!(type_at(&registry, "/5/0/4"), None);

        let device = registry.get(3).unwrap();
        assert_eq!(device.name, "Device");
        assert!(!device.multiple_instances && device.mandatory);
        let reboot = device.resource(4).unwrap();
        assert_eq!(reboot.name, "Reboot");
        assert!(reboot.operations.executable() && reboot.mandatory);
        let error_code = device.resource(11).unwrap();
        assert!(error_code.multiple_instances && error_code.mandatory);
        assert_eq!(device.resource(9).unwrap().range.as_deref(), Some("0..100"));

        let security = registry.get(0).unwrap();
        assert!(security.multiple_instances && security.mandatory);
        assert!(security
            .resources
            .values()
            .all(|resource| resource.operations == Operations::None));
        let lifetime = registry.get(1).unwrap().resource(1).unwrap();
        assert_eq!(lifetime.operations, Operations::RW);
        assert_eq!(lifetime.units.as_deref(), Some("s"));
        assert_eq!(
            registry.get(5).unwrap().resource(0).unwrap().operations,
            Operations::W
        );
    }

    #[test]
    fn core_objects_survive_the_json_round_trip() {
        for def in core_objects() {
            assert_eq!(ObjectDef::from_json(&def.to_json()).unwrap(), def);
        }
    }
}
