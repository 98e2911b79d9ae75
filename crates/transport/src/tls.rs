//! TLS server configuration (`ssl_options`): certificates and keys from PEM files or PEM
//! text, the TLS versions and cipher suites offered, and client certificate checks.

use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a PEM object comes from: EMQX takes a file path or the PEM text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file.
    File(PathBuf),
    /// PEM text written in the configuration.
    Inline(String),
}

impl Pem {
    /// Text that starts with a PEM armour line is PEM; anything else is a path.
    pub fn from_config(value: &str) -> Pem {
        if value.trim_start().starts_with("-----BEGIN ") {
            Pem::Inline(value.to_string())
        } else {
            Pem::File(value.into())
        }
    }

    /// The PEM text (read from the file, or as written).
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    /// How errors name it: the path, or "inline PEM".
    fn name(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "(inline PEM)".to_string(),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = match self {
            Pem::File(p) => CertificateDer::pem_file_iter(p).and_then(|it| it.collect()),
            Pem::Inline(text) => CertificateDer::pem_slice_iter(text.as_bytes()).collect(),
        };
        certs.map_err(|e| format!("{}: {e}", self.name()))
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        let key = match self {
            Pem::File(p) => PrivateKeyDer::from_pem_file(p),
            Pem::Inline(text) => PrivateKeyDer::from_pem_slice(text.as_bytes()),
        };
        key.map_err(|e| format!("{}: {e}", self.name()))
    }
}

impl Default for Pem {
    fn default() -> Self {
        Pem::File(PathBuf::new())
    }
}

/// A TLS protocol version a listener offers (`ssl_options.versions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// `ssl_options` of an ssl or wss listener.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Server certificate chain (PEM).
    pub certfile: Pem,
    /// Server private key (PEM).
    pub keyfile: Pem,
    /// CA certificates for verifying client certificates (PEM).
    pub cacertfile: Option<Pem>,
    /// `verify = verify_peer`: ask clients for a certificate and verify it.
    pub verify_peer: bool,
    /// `fail_if_no_peer_cert`: refuse clients without a certificate (with `verify_peer`).
    pub fail_if_no_peer_cert: bool,
    /// `versions`: the TLS versions offered (empty: 1.2 and 1.3).
    pub versions: Vec<TlsVersion>,
    /// `ciphers`: the cipher suites offered, in order of preference, by IANA or OpenSSL
    /// name (empty: every suite of the TLS library). Names the library does not have are
    /// not offered; a list with none it has is an error.
    pub ciphers: Vec<String>,
}

/// Every suite by its IANA name and its OpenSSL name.
fn suites_by_name() -> [(&'static str, &'static str, SupportedCipherSuite); 9] {
    [
        (
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_256_GCM_SHA384",
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_128_GCM_SHA256",
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305",
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

/// The crypto provider with the suites `ciphers` names, in its order.
fn provider(ciphers: &[String]) -> Result<CryptoProvider, String> {
    let mut provider = default_provider();
    if ciphers.is_empty() {
        return Ok(provider);
    }
    let known = suites_by_name();
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in ciphers {
        let name = name.trim();
        if let Some((_, _, suite)) = known.iter().find(|(iana, openssl, _)| {
            iana.eq_ignore_ascii_case(name) || openssl.eq_ignore_ascii_case(name)
        }) {
            if !chosen.contains(suite) {
                chosen.push(*suite);
            }
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "ciphers: none of {ciphers:?} is available (available: {})",
            known.map(|(iana, _, _)| iana).join(", ")
        ));
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// Build a rustls server configuration; errors name the file (or option) at fault.
pub fn load_server_config(opts: &TlsOptions) -> Result<ServerConfig, String> {
    let certs = opts
        .certfile
        .certificates()
        .map_err(|e| format!("certfile {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "certfile {}: no certificate found",
            opts.certfile.name()
        ));
    }
    let key = opts
        .keyfile
        .private_key()
        .map_err(|e| format!("keyfile {e}"))?;
    let provider = Arc::new(provider(&opts.ciphers)?);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    for v in &opts.versions {
        let v = match v {
            TlsVersion::Tls13 => &rustls::version::TLS13,
            TlsVersion::Tls12 => &rustls::version::TLS12,
        };
        if !versions.iter().any(|have| have.version == v.version) {
            versions.push(v);
        }
    }
    if versions.is_empty() {
        versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("versions/ciphers: {e}"))?;
    let builder = if opts.verify_peer {
        let ca = opts
            .cacertfile
            .as_ref()
            .ok_or_else(|| "verify_peer needs ssl_options.cacertfile".to_string())?;
        let mut roots = RootCertStore::empty();
        for cert in ca.certificates().map_err(|e| format!("cacertfile {e}"))? {
            roots
                .add(cert)
                .map_err(|e| format!("cacertfile {}: {e}", ca.name()))?;
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
        .map_err(|e| format!("keyfile {}: {e}", opts.keyfile.name()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_text_is_told_from_a_path() {
        assert_eq!(
            Pem::from_config("etc/certs/cert.pem"),
            Pem::File("etc/certs/cert.pem".into())
        );
        let text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(Pem::from_config(text), Pem::Inline(text.to_string()));
    }

    #[test]
    fn ciphers_are_chosen_by_either_name_in_order_and_unknown_ones_are_not_offered() {
        let p = provider(&[
            "ECDHE-RSA-AES128-GCM-SHA256".into(),
            "DHE-RSA-AES256-SHA".into(),
            "TLS_AES_128_GCM_SHA256".into(),
        ])
        .unwrap();
        assert_eq!(
            p.cipher_suites,
            vec![
                cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS13_AES_128_GCM_SHA256
            ]
        );
        assert!(provider(&["RC4-MD5".into()]).is_err());
        assert_eq!(provider(&[]).unwrap().cipher_suites.len(), 9);
    }
}
