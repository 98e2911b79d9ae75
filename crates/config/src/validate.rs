//! Checks that span more than one value's syntax: ranges, required TLS files, and
//! listeners that would fight over one address.

use crate::error::ConfigError;
use crate::gateway::{BindUse, GatewayListener, ListenerType};
use crate::tree::render_path;
use crate::Config;
use std::collections::HashMap;

/// Largest packet MQTT can frame (Remaining Length 268435455 plus the fixed header),
/// which EMQX rounds to 256MB.
const MAX_PACKET_SIZE_LIMIT: u64 = 256 * 1024 * 1024;

/// Shortest client ID limit the MQTT spec lets a server impose [MQTT-3.1.3-5].
const MIN_CLIENTID_LEN: u16 = 23;

pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    validate_mqtt(config)?;
    validate_listeners(config)?;
    check_binds(config.listeners.binds())
}

/// One gateway listener: a valid name, a type gateway `gateway` takes (`kinds`), a bind,
/// and certificates if it is an enabled TLS listener.
pub(crate) fn gateway_listener(
    gateway: &str,
    kinds: &[ListenerType],
    kind: &str,
    name: &str,
    listener: &GatewayListener,
) -> Result<(), ConfigError> {
    let path = |key: &[&str]| {
        render_path(
            ["gateway", gateway, "listeners", kind, name]
                .into_iter()
                .chain(key.iter().copied()),
        )
    };
    if !crate::tree::is_valid_listener_name(name) {
        return Err(ConfigError::invalid(
            path(&[]),
            "invalid listener name: must start with a letter and contain only \
             letters, digits, '_' and '-'",
        ));
    }
    if !kinds.iter().any(|k| k.as_str() == kind) {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        return Err(ConfigError::invalid(
            path(&[]),
            format!(
                "{kind} is not a listener type of the {gateway} gateway (expected one of {})",
                names.join(", ")
            ),
        ));
    }
    if listener.bind.is_none() {
        return Err(ConfigError::invalid(
            path(&["bind"]),
            "required".to_string(),
        ));
    }
    if kind == "ssl" && listener.enable {
        let ssl = listener.ssl_options.as_ref();
        for (key, value) in [
            ("certfile", ssl.and_then(|s| s.certfile.as_ref())),
            ("keyfile", ssl.and_then(|s| s.keyfile.as_ref())),
        ] {
            if value.is_none() {
                return Err(ConfigError::invalid(
                    path(&["ssl_options", key]),
                    format!("required for an enabled {kind} listener"),
                ));
            }
        }
    }
    Ok(())
}

/// No two enabled listeners bind one address of one transport (TCP and UDP apart). Port 0
/// asks the OS for a free port, so it never clashes.
pub fn check_binds(binds: impl IntoIterator<Item = BindUse>) -> Result<(), ConfigError> {
    let mut seen: HashMap<(std::net::SocketAddr, bool), String> = HashMap::new();
    for b in binds {
        if b.addr.port() == 0 {
            continue;
        }
        if let Some(other) = seen.insert((b.addr, b.udp), b.path.clone()) {
            return Err(ConfigError::invalid(
                format!("{}.bind", b.path),
                format!("{} is already used by {other}", b.addr),
            ));
        }
    }
    Ok(())
}

fn validate_mqtt(config: &Config) -> Result<(), ConfigError> {
    let mqtt = &config.mqtt;
    let size = mqtt.max_packet_size.as_u64();
    if size == 0 || size > MAX_PACKET_SIZE_LIMIT {
        return Err(ConfigError::invalid(
            "mqtt.max_packet_size",
            format!("{size} bytes is out of range (1B..256MB)"),
        ));
    }
    if mqtt.max_clientid_len < MIN_CLIENTID_LEN {
        return Err(ConfigError::invalid(
            "mqtt.max_clientid_len",
            format!(
                "{} is below {MIN_CLIENTID_LEN}, the least MQTT requires [MQTT-3.1.3-5]",
                mqtt.max_clientid_len
            ),
        ));
    }
    if mqtt.max_qos_allowed > 2 {
        return Err(ConfigError::invalid(
            "mqtt.max_qos_allowed",
            format!("{} is not a QoS (expected 0, 1 or 2)", mqtt.max_qos_allowed),
        ));
    }
    for (key, value) in [
        ("mqtt.max_topic_levels", mqtt.max_topic_levels),
        ("mqtt.max_inflight", mqtt.max_inflight),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1"));
        }
    }
    if !(mqtt.keepalive_multiplier.is_finite() && mqtt.keepalive_multiplier > 0.0) {
        return Err(ConfigError::invalid(
            "mqtt.keepalive_multiplier",
            format!("{} must be a positive number", mqtt.keepalive_multiplier),
        ));
    }
    for (topic, priority) in mqtt.mqueue_priorities.iter().flatten() {
        if *priority == 0 {
            return Err(ConfigError::invalid(
                render_path(["mqtt", "mqueue_priorities", topic.as_str()]),
                "priority must be between 1 and 255",
            ));
        }
    }
    Ok(())
}

fn validate_listeners(config: &Config) -> Result<(), ConfigError> {
    for (kind, name, listener) in config.listeners.iter() {
        let path = |key: &[&str]| {
            render_path(
                ["listeners", kind.as_str(), name]
                    .into_iter()
                    .chain(key.iter().copied()),
            )
        };
        if kind.is_tls() && listener.enable {
            let ssl = listener.ssl_options.clone().unwrap_or_default();
            for (key, value) in [("certfile", &ssl.certfile), ("keyfile", &ssl.keyfile)] {
                if value.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigError::invalid(
                        path(&["ssl_options", key]),
                        format!("required for an enabled {kind} listener"),
                    ));
                }
            }
        }
        if let Some(websocket) = &listener.websocket {
            if !websocket.mqtt_path.starts_with('/') {
                return Err(ConfigError::invalid(
                    path(&["websocket", "mqtt_path"]),
                    format!("{:?} must start with '/'", websocket.mqtt_path),
                ));
            }
        }
    }
    Ok(())
}
