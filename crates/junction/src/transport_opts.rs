//! Listener options from the config, shared by MQTT listeners and gateway listeners:
//! `tcp_options`, `ssl_options` and the PROXY protocol keys.

use anyhow::Context;
use junction_config::{SslOptions, SslVerify, TcpOptions};
use junction_transport::{ListenerOptions, Pem, TlsOptions, TlsVersion};

/// Apply `tcp_options` (`<path>` names the listener in errors).
pub(crate) fn apply_tcp_options(opts: &mut ListenerOptions, t: &TcpOptions) {
    opts.nodelay = t.nodelay;
    opts.backlog = t.backlog;
    opts.send_timeout = t.send_timeout.as_std();
    opts.sndbuf = t.sndbuf.map(|b| b.as_u64().min(usize::MAX as u64) as usize);
    opts.recbuf = t.recbuf.map(|b| b.as_u64().min(usize::MAX as u64) as usize);
    opts.reuseaddr = t.reuseaddr;
}

/// Apply `proxy_protocol` and `proxy_protocol_timeout`.
pub(crate) fn apply_proxy_protocol(
    opts: &mut ListenerOptions,
    enabled: bool,
    timeout: junction_config::Duration,
) {
    opts.proxy_protocol = enabled.then(|| timeout.as_std());
}

/// Apply `ssl_options`; `path` is the listener's key path, for errors.
pub(crate) fn apply_ssl_options(
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
