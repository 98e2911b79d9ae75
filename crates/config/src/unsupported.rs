//! Keys the loader accepts (EMQX's configurations carry them) whose behaviour Junction does
//! not offer yet. At their default they describe what Junction does; set to anything else
//! they stop the start with the key's path and "not supported yet", so a configuration
//! never relies on a setting that is quietly ignored. Every key's status is listed in
//! [`crate::key_status`], which a test holds against the keys the types accept.

use crate::error::ConfigError;
use crate::gateway::GatewayListener;
use crate::listener::{Piggyback, SslOptions, TcpOptions};
use crate::mqtt::{MqueueDefaultPriority, PeerCertAs};
use crate::sections::{AuthzCache, DenyAction};
use crate::tree::render_path;
use crate::Config;

/// The message every refusal carries.
pub(crate) const NOT_SUPPORTED: &str = "not supported yet";

/// The error for a key set to what Junction does not support yet: "not supported yet: <what>".
pub fn not_supported(path: impl Into<String>, what: &str) -> ConfigError {
    ConfigError::invalid(path, format!("{NOT_SUPPORTED}: {what}"))
}

/// Refuse the first key set to a value Junction does not support.
pub(crate) fn refuse(config: &Config) -> Result<(), ConfigError> {
    let check = |cond: bool, path: &str, what: &str| {
        if cond {
            Err(not_supported(path, what))
        } else {
            Ok(())
        }
    };
    check(
        config.node.cookie.is_some(),
        "node.cookie",
        "Junction has no Erlang distribution",
    )?;
    check(
        !config.broker.enable_session_registry,
        "broker.enable_session_registry",
        "sessions are always registered by client id",
    )?;
    let mqtt = &config.mqtt;
    check(
        mqtt.exclusive_subscription,
        "mqtt.exclusive_subscription",
        "no $exclusive/ subscriptions",
    )?;
    check(
        !mqtt.strict_mode,
        "mqtt.strict_mode",
        "packets are always checked strictly (invalid UTF-8 is refused)",
    )?;
    check(
        mqtt.mqueue_priorities.is_some(),
        "mqtt.mqueue_priorities",
        "queues are first in, first out",
    )?;
    check(
        mqtt.mqueue_default_priority != MqueueDefaultPriority::Lowest,
        "mqtt.mqueue_default_priority",
        "queues are first in, first out",
    )?;
    for (key, value) in [
        ("mqtt.peer_cert_as_username", mqtt.peer_cert_as_username),
        ("mqtt.peer_cert_as_clientid", mqtt.peer_cert_as_clientid),
    ] {
        check(
            value != PeerCertAs::Disabled,
            key,
            "client certificates are verified but not read",
        )?;
    }
    refuse_authorization(config)?;
    refuse_psk(config)?;
    refuse_ssl_options(
        &config.dashboard.listeners.https.ssl_options,
        "dashboard.listeners.https.ssl_options",
    )?;
    for (kind, name, l) in config.listeners.iter() {
        let path = |key: &[&str]| {
            render_path(
                ["listeners", kind.as_str(), name]
                    .into_iter()
                    .chain(key.iter().copied()),
            )
        };
        check(l.zone != "default", &path(&["zone"]), "one zone, `default`")?;
        refuse_tcp_options(&l.tcp_options, &path(&["tcp_options"]))?;
        if let Some(ssl) = &l.ssl_options {
            refuse_ssl_options(ssl, &path(&["ssl_options"]))?;
        }
        if let Some(ws) = &l.websocket {
            check(
                ws.compress,
                &path(&["websocket", "compress"]),
                "no permessage-deflate",
            )?;
            check(
                ws.mqtt_piggyback == Piggyback::Single,
                &path(&["websocket", "mqtt_piggyback"]),
                "a WebSocket message may carry several packets (`multiple`)",
            )?;
        }
    }
    Ok(())
}

fn refuse_psk(config: &Config) -> Result<(), ConfigError> {
    let psk = &config.psk_authentication;
    if psk.chunk_size != crate::PskAuthentication::default().chunk_size {
        return Err(not_supported(
            "psk_authentication.chunk_size",
            "the file is read whole at start",
        ));
    }
    Ok(())
}

fn refuse_authorization(config: &Config) -> Result<(), ConfigError> {
    let authz = &config.authorization;
    if authz.deny_action != DenyAction::Ignore {
        return Err(not_supported(
            "authorization.deny_action",
            "a denied request is refused, the connection kept",
        ));
    }
    let default = AuthzCache::default();
    for (key, differs) in [
        ("enable", authz.cache.enable != default.enable),
        ("max_size", authz.cache.max_size != default.max_size),
        ("ttl", authz.cache.ttl != default.ttl),
        ("excludes", authz.cache.excludes != default.excludes),
    ] {
        if differs {
            return Err(not_supported(
                format!("authorization.cache.{key}"),
                "verdicts are not cached yet: every check runs the rules",
            ));
        }
    }
    Ok(())
}

fn refuse_tcp_options(t: &TcpOptions, path: &str) -> Result<(), ConfigError> {
    if t.buffer.is_some() {
        return Err(not_supported(
            format!("{path}.buffer"),
            "the read buffer grows as needed",
        ));
    }
    Ok(())
}

fn refuse_ssl_options(ssl: &SslOptions, path: &str) -> Result<(), ConfigError> {
    if ssl.depth != SslOptions::default().depth {
        return Err(not_supported(
            format!("{path}.depth"),
            "client chains are verified whole",
        ));
    }
    if ssl.password.is_some() {
        return Err(not_supported(
            format!("{path}.password"),
            "keyfile must not be encrypted",
        ));
    }
    Ok(())
}

/// Keys of a gateway listener that do not apply to its type, or that Junction does not
/// support yet.
pub(crate) fn refuse_gateway_listener(
    gateway: &str,
    kind: &str,
    name: &str,
    l: &GatewayListener,
) -> Result<(), ConfigError> {
    let path = |key: &str| render_path(["gateway", gateway, "listeners", kind, name, key]);
    let stream = matches!(kind, "tcp" | "ssl");
    let only = |set: bool, key: &str, kinds: &str| {
        if set {
            Err(not_supported(
                path(key),
                &format!("{key} applies to {kinds} listeners"),
            ))
        } else {
            Ok(())
        }
    };
    if stream {
        only(l.udp_options.is_some(), "udp_options", "udp and dtls")?;
        only(l.health_check.is_some(), "health_check", "udp and dtls")?;
        only(l.dtls_options.is_some(), "dtls_options", "dtls")?;
        only(
            kind == "tcp" && l.ssl_options.is_some(),
            "ssl_options",
            "ssl",
        )?;
    } else {
        only(l.tcp_options.is_some(), "tcp_options", "tcp and ssl")?;
        only(l.ssl_options.is_some(), "ssl_options", "ssl")?;
        only(l.proxy_protocol, "proxy_protocol", "tcp and ssl")?;
        only(
            l.proxy_protocol_timeout != GatewayListener::default().proxy_protocol_timeout,
            "proxy_protocol_timeout",
            "tcp and ssl",
        )?;
        only(
            l.acceptors != GatewayListener::default().acceptors,
            "acceptors",
            "tcp and ssl",
        )?;
        if let Some(udp) = &l.udp_options {
            if udp.active_n != crate::gateway::UdpOptions::default().active_n {
                return Err(not_supported(
                    path("udp_options") + ".active_n",
                    "datagrams are read as they come",
                ));
            }
        }
        only(
            kind == "udp" && l.dtls_options.is_some(),
            "dtls_options",
            "dtls",
        )?;
    }
    if let Some(d) = &l.dtls_options {
        let path = path("dtls_options");
        let default = crate::gateway::DtlsOptions::default();
        if d.depth != default.depth {
            return Err(not_supported(
                format!("{path}.depth"),
                "client chains are verified whole",
            ));
        }
        if d.password.is_some() {
            return Err(not_supported(
                format!("{path}.password"),
                "keyfile must not be encrypted",
            ));
        }
        if d.versions.contains(&crate::gateway::DtlsVersion::Dtlsv1) {
            return Err(not_supported(
                format!("{path}.versions"),
                "DTLS 1.2 only (DTLS 1.0 is obsolete, RFC 8996)",
            ));
        }
    }
    if let Some(t) = &l.tcp_options {
        refuse_tcp_options(t, &path("tcp_options"))?;
    }
    if let Some(ssl) = &l.ssl_options {
        refuse_ssl_options(ssl, &path("ssl_options"))?;
    }
    Ok(())
}
