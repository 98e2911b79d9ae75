//! Listener options from the config, shared by MQTT listeners and gateway listeners:
//! `tcp_options`, `ssl_options`, the PROXY protocol keys and `access_rules`; and the whole
//! [`ListenerOptions`] of a gateway's TCP or TLS listener.

use anyhow::Context;
use junction_config::{GatewayListener, SslOptions, SslVerify, TcpOptions};
use junction_transport::{AccessList, ListenerKind, ListenerOptions, Pem, TlsOptions, TlsVersion};
use std::net::SocketAddr;

/// Apply `tcp_options` (`<path>` names the listener in errors).
pub fn apply_tcp_options(opts: &mut ListenerOptions, t: &TcpOptions) {
    opts.nodelay = t.nodelay;
    opts.backlog = t.backlog;
    opts.send_timeout = t.send_timeout.as_std();
    opts.sndbuf = t.sndbuf.map(|b| b.as_u64().min(usize::MAX as u64) as usize);
    opts.recbuf = t.recbuf.map(|b| b.as_u64().min(usize::MAX as u64) as usize);
    opts.reuseaddr = t.reuseaddr;
}

/// Apply `proxy_protocol` and `proxy_protocol_timeout`.
pub fn apply_proxy_protocol(
    opts: &mut ListenerOptions,
    enabled: bool,
    timeout: junction_config::Duration,
) {
    opts.proxy_protocol = enabled.then(|| timeout.as_std());
}

/// Apply `ssl_options`; `path` is the listener's key path, for errors.
pub fn apply_ssl_options(
    opts: &mut ListenerOptions,
    ssl: &SslOptions,
    path: &str,
) -> anyhow::Result<()> {
    let required = |value: &Option<String>, key: &str| {
        value
            .as_deref()
            .map(Pem::from_config)
            .with_context(|| format!("{path}.ssl_options.{key} is required"))
    };
    opts.tls = Some(TlsOptions {
        certfile: required(&ssl.certfile, "certfile")?,
        keyfile: required(&ssl.keyfile, "keyfile")?,
        cacertfile: ssl.cacertfile.as_deref().map(Pem::from_config),
        verify_peer: ssl.verify == SslVerify::VerifyPeer,
        fail_if_no_peer_cert: ssl.fail_if_no_peer_cert,
        versions: ssl
            .versions
            .iter()
            .map(|v| match v {
                junction_config::TlsVersion::Tlsv1_2 => TlsVersion::Tls12,
                junction_config::TlsVersion::Tlsv1_3 => TlsVersion::Tls13,
            })
            .collect(),
        ciphers: ssl.ciphers.clone(),
    });
    opts.handshake_timeout = ssl.handshake_timeout.as_std();
    Ok(())
}

/// `access_rules` as a listener applies them: the first rule that matches the peer
/// decides; a peer no rule matches is let in (EMQX's esockd).
pub fn access_list(rules: &[junction_config::AccessRule]) -> AccessList {
    let only_allow_all = rules.iter().all(|r| {
        r.action == junction_config::AccessAction::Allow
            && r.targets.contains(&junction_config::AccessTarget::All)
    });
    if only_allow_all {
        return AccessList::default();
    }
    let rules = rules.to_vec();
    AccessList::new(move |ip| {
        rules
            .iter()
            .find(|r| r.matches(ip))
            .is_none_or(|r| r.action == junction_config::AccessAction::Allow)
    })
}

/// A gateway listener's `bind` (the config check makes it required).
pub fn bind_of(id: &str, l: &GatewayListener) -> anyhow::Result<SocketAddr> {
    l.bind
        .map(|b| b.0)
        .with_context(|| format!("listener {id}: bind is required"))
}

/// Transport options of a gateway's TCP or TLS listener `id` (`<gateway>:<type>:<name>`).
pub fn stream_listener_options(
    id: &str,
    kind: &str,
    l: &GatewayListener,
) -> anyhow::Result<ListenerOptions> {
    let tkind = match kind {
        "tcp" => ListenerKind::Tcp,
        "ssl" => ListenerKind::Ssl,
        other => anyhow::bail!("{id}: {other} is not a stream listener"),
    };
    let mut opts = ListenerOptions::new(id.to_string(), tkind, bind_of(id, l)?);
    opts.max_connections = l.max_connections.map(|n| n as usize);
    opts.max_conn_rate = l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32);
    if let Some(t) = &l.tcp_options {
        apply_tcp_options(&mut opts, t);
    }
    opts.acceptors = (l.acceptors as usize).clamp(1, 1024);
    opts.access = access_list(&l.access_rules);
    apply_proxy_protocol(&mut opts, l.proxy_protocol, l.proxy_protocol_timeout);
    if let Some(ssl) = &l.ssl_options {
        let (gateway, rest) = id.split_once(':').unwrap_or((id, ""));
        let path = format!("gateway.{gateway}.listeners.{}", rest.replace(':', "."));
        apply_ssl_options(&mut opts, ssl, &path)?;
    }
    Ok(opts)
}

/// The UDP socket and peer-table settings of a gateway's `udp` or `dtls` listener:
/// `max_connections` and `max_conn_rate` as peer limits, `udp_options`, `access_rules`
/// and `health_check`.
pub fn udp_settings(l: &GatewayListener) -> crate::driver::datagram::UdpSettings {
    let udp = l.udp_options.clone().unwrap_or_default();
    let size = |b: junction_config::ByteSize| b.as_u64().min(usize::MAX as u64) as usize;
    crate::driver::datagram::UdpSettings {
        access: access_list(&l.access_rules),
        max_peers: l.max_connections.map(|n| n.min(usize::MAX as u64) as usize),
        max_new_peers_per_sec: l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32),
        recbuf: udp.recbuf.map(size),
        sndbuf: udp.sndbuf.map(size),
        reuseaddr: udp.reuseaddr,
        buffer: udp.buffer.map_or(65_536, |b| size(b).min(65_536)),
        health_check: l.health_check.as_ref().map(|h| {
            (
                bytes::Bytes::from(h.request.clone()),
                bytes::Bytes::from(h.reply.clone()),
            )
        }),
    }
}
