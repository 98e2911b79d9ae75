//! TLS server configuration from PEM files (`ssl_options`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// `ssl_options` of an ssl or wss listener.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Server certificate chain (PEM).
    pub certfile: PathBuf,
    /// Server private key (PEM).
    pub keyfile: PathBuf,
    /// CA certificates for verifying client certificates (PEM).
    pub cacertfile: Option<PathBuf>,
    /// `verify = verify_peer`: ask clients for a certificate and verify it.
    pub verify_peer: bool,
    /// `fail_if_no_peer_cert`: refuse clients without a certificate (with `verify_peer`).
    pub fail_if_no_peer_cert: bool,
}

/// Build a rustls server configuration; errors name the file at fault.
pub fn load_server_config(opts: &TlsOptions) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&opts.certfile)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certfile {}: {e}", opts.certfile.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certfile {}: no certificate found",
            opts.certfile.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&opts.keyfile)
        .map_err(|e| format!("keyfile {}: {e}", opts.keyfile.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if opts.verify_peer {
        let ca = opts
            .cacertfile
            .as_ref()
            .ok_or_else(|| "verify_peer needs ssl_options.cacertfile".to_string())?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cacertfile {}: {e}", ca.display()))?
        {
            let cert = cert.map_err(|e| format!("cacertfile {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("cacertfile {}: {e}", ca.display()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if opts.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("keyfile {}: {e}", opts.keyfile.display()))?;
    // No TLS 1.3 session tickets, as EMQX (Erlang's `session_tickets` is `disabled` by
    // default). Tickets arrive after the handshake, and clients that read and write one TLS
    // socket from two threads (stomp.py on Python's ssl) can lose their first frame while
    // one thread takes the tickets in. TLS 1.2 session-id resumption stays on.
    config.send_tls13_tickets = 0;
    Ok(config)
}

pub(crate) fn acceptor(opts: &TlsOptions) -> Result<tokio_rustls::TlsAcceptor, String> {
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(
        load_server_config(opts)?,
    )))
}
