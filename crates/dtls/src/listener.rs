//! The DTLS server of a gateway's `dtls` listener, from its `dtls_options` and the
//! node's PSK identities, and the one start path of every datagram gateway's listeners
//! (`udp`, or `dtls` with that server).

use crate::{OpensslEndpoint, ServerConfig};
use anyhow::Context;
use junction_config::{GatewayListener, ListenerType, SslVerify};
use junction_gateway::driver::datagram::{self, DatagramProtocol};
use junction_gateway::driver::dtls::Endpoint;
use junction_gateway::listener_opts::{bind_of, udp_settings};
use junction_gateway::{GatewayCtx, Listening};
use std::sync::Arc;

/// Start listener `id` (`<gateway>:<kind>:<name>`) of a datagram gateway around
/// `protocol`: bound as `l` says, with its UDP options, and over DTLS when `kind` is
/// `dtls`.
pub async fn start_datagram<P: DatagramProtocol>(
    ctx: Arc<GatewayCtx>,
    protocol: Arc<P>,
    kind: ListenerType,
    id: String,
    l: &GatewayListener,
) -> anyhow::Result<Box<dyn Listening>> {
    let bind = bind_of(&id, l)?;
    let dtls = match kind {
        ListenerType::Dtls => Some(listener_endpoint(&ctx, &id, l)?),
        _ => None,
    };
    let handle = datagram::start(ctx, protocol, id.clone(), bind, udp_settings(l), dtls)
        .await
        .with_context(|| format!("listener {id}: cannot bind {bind}"))?;
    Ok(Box::new(handle))
}

/// The DTLS server of listener `id` (`<gateway>:dtls:<name>`): the node's PSK identities
/// (`psk_authentication`) and the listener's `dtls_options`. Errors name the listener
/// and the key.
pub fn listener_endpoint(
    ctx: &GatewayCtx,
    id: &str,
    l: &GatewayListener,
) -> anyhow::Result<Arc<dyn Endpoint>> {
    let options = l.dtls_options.clone().unwrap_or_default();
    let pem = |value: &Option<String>, key: &str| -> anyhow::Result<Option<Vec<u8>>> {
        value
            .as_deref()
            .map(|v| {
                junction_transport::Pem::from_config(v)
                    .bytes()
                    .map_err(|e| anyhow::anyhow!("listener {id}: dtls_options.{key}: {e}"))
            })
            .transpose()
    };
    let cert = pem(&options.certfile, "certfile")?;
    let key = pem(&options.keyfile, "keyfile")?;
    let config = ServerConfig {
        psk: ctx.settings().psk.clone(),
        cert_and_key: cert.zip(key),
        ca: pem(&options.cacertfile, "cacertfile")?,
        verify_peer: options.verify == SslVerify::VerifyPeer,
        fail_if_no_peer_cert: options.fail_if_no_peer_cert,
        ciphers: (!options.ciphers.is_empty()).then(|| options.ciphers.join(":")),
        mtu: 1400,
        handshake_timeout: options.handshake_timeout.as_std(),
    };
    let endpoint =
        OpensslEndpoint::new(&config).map_err(|e| anyhow::anyhow!("listener {id}: {e}"))?;
    Ok(Arc::new(endpoint))
}
