//! Protocol gateways, `gateway.<name> { … }` (EMQX keys, reference §1.5, §5.1, §5.2).
//!
//! The config crate knows no gateway. It keeps each `gateway.<name>` section as written
//! (file, then environment) in [`Gateways`]; the gateway crate that owns the name reads its
//! typed section with [`Gateways::section`], and the server refuses a section no registered
//! gateway owns. What every gateway shares lives here: the listener keys
//! ([`GatewayListeners`], checked by [`GatewayListeners::check`]) and `clientinfo_override`.

use crate::authn::AuthnConfig;
use crate::error::ConfigError;
use crate::listener::{AccessRule, SslOptions, SslVerify, TcpOptions};
use crate::tree::{self, render_path, EnvOrigin};
use crate::units::{infinity_or, rate_or_infinity, Bind, ByteSize, Duration};
use hocon::HoconValue;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The gateways EMQX 5.x has, by config name: a section for one Junction has not built yet
/// is refused with "not supported yet" rather than as an unknown key.
pub const EMQX_GATEWAYS: &[&str] = &[
    "stomp", "mqttsn", "coap", "lwm2m", "exproto", "jt808", "gbt32960", "ocpp", "nats",
];

/// Every `gateway.<name> { … }` section as written, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gateways {
    sections: IndexMap<String, HoconValue>,
    /// Keys set by environment variables, so errors inside a section can name them.
    origins: Vec<EnvOrigin>,
}

impl Gateways {
    /// Take the `gateway` object out of the merged tree.
    pub(crate) fn from_tree(
        value: Option<HoconValue>,
        origins: &[EnvOrigin],
    ) -> Result<Gateways, ConfigError> {
        let sections = match value {
            None => IndexMap::new(),
            Some(HoconValue::Object(sections)) => sections,
            Some(_) => return Err(ConfigError::invalid("gateway", "expected an object")),
        };
        for (name, section) in &sections {
            if !matches!(section, HoconValue::Object(_)) {
                return Err(ConfigError::invalid(
                    render_path(["gateway", name.as_str()]),
                    "expected an object",
                ));
            }
        }
        Ok(Gateways {
            sections,
            origins: origins.to_vec(),
        })
    }

    /// The names of the sections written, in the order written.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.sections.keys().map(String::as_str)
    }

    /// Read section `name` as `T`; a section not written reads as an empty one (so `T`'s
    /// defaults). Errors carry the full key path (`gateway.<name>.…`).
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let value = self
            .sections
            .get(name)
            .cloned()
            .unwrap_or_else(|| HoconValue::Object(IndexMap::new()));
        tree::deserialize_value(&["gateway", name], value)
            .map_err(|error| tree::blame_env(error, &self.origins))
    }

    /// Section `name` as JSON, as written (`None` if the file has none).
    pub fn section_json(&self, name: &str) -> Option<serde_json::Value> {
        self.sections.get(name).map(tree::to_json)
    }

    /// Replace section `name` with `value` (a JSON object), or remove it (`None`): what a
    /// change made through the management API does to the tree. Errors name the key path
    /// when the value is not an object.
    pub fn set_section(
        &mut self,
        name: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<(), ConfigError> {
        match value {
            None => {
                self.sections.shift_remove(name);
            }
            Some(v @ serde_json::Value::Object(_)) => {
                self.sections.insert(name.to_string(), tree::from_json(v));
            }
            Some(_) => {
                return Err(ConfigError::invalid(
                    render_path(["gateway", name]),
                    "expected an object",
                ))
            }
        }
        Ok(())
    }

    /// The sections as JSON, as written (for the management API's view of the file).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.sections
                .iter()
                .map(|(name, value)| (name.clone(), tree::to_json(value)))
                .collect(),
        )
    }
}

/// `clientinfo_override { … }`: templates that replace the client's identity before
/// authentication (`${Packet.headers.login}`, `${ConnInfo.clientid}`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientInfoOverride {
    /// Client id template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clientid: Option<String>,
    /// User name template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A gateway's listeners by type and name, `listeners.<type>.<name> { … }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayListeners {
    /// TCP listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp: BTreeMap<String, GatewayListener>,
    /// TLS listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssl: BTreeMap<String, GatewayListener>,
    /// UDP listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub udp: BTreeMap<String, GatewayListener>,
    /// DTLS listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dtls: BTreeMap<String, GatewayListener>,
}

impl GatewayListeners {
    /// One listener, `<kind>.default`, on `port` of every interface (a gateway's default).
    pub fn one(kind: ListenerType, port: u16) -> Self {
        let mut l = GatewayListeners::default();
        let listener = GatewayListener {
            bind: Some(Bind::any(port)),
            ..GatewayListener::default()
        };
        l.of_mut(kind).insert("default".into(), listener);
        l
    }

    fn of_mut(&mut self, kind: ListenerType) -> &mut BTreeMap<String, GatewayListener> {
        match kind {
            ListenerType::Tcp => &mut self.tcp,
            ListenerType::Ssl => &mut self.ssl,
            ListenerType::Udp => &mut self.udp,
            ListenerType::Dtls => &mut self.dtls,
        }
    }

    /// Check the listeners of gateway `gateway`, which takes listeners of `kinds`: valid
    /// names, a `bind` on each, certificates on enabled TLS listeners, and no key that does
    /// not apply to its type or that Junction does not support yet.
    pub fn check(&self, gateway: &str, kinds: &[ListenerType]) -> Result<(), ConfigError> {
        for (kind, name, listener) in self.iter() {
            crate::validate::gateway_listener(gateway, kinds, kind, name, listener)?;
            crate::unsupported::refuse_gateway_listener(gateway, kind, name, listener)?;
        }
        Ok(())
    }

    /// The addresses the enabled listeners bind, for [`crate::check_binds`].
    pub fn binds(&self, gateway: &str) -> Vec<BindUse> {
        self.iter()
            .filter(|(_, _, l)| l.enable)
            .filter_map(|(kind, name, l)| {
                let addr = l.bind?.0;
                Some(BindUse {
                    addr,
                    udp: matches!(kind, "udp" | "dtls"),
                    path: render_path(["gateway", gateway, "listeners", kind, name]),
                })
            })
            .collect()
    }

    /// Every listener as (type, name, listener).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &GatewayListener)> + '_ {
        [
            ("tcp", &self.tcp),
            ("ssl", &self.ssl),
            ("udp", &self.udp),
            ("dtls", &self.dtls),
        ]
        .into_iter()
        .flat_map(|(kind, map)| map.iter().map(move |(name, l)| (kind, name.as_str(), l)))
    }
}

/// A gateway listener type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerType {
    /// `tcp`
    Tcp,
    /// `ssl` (TLS over TCP)
    Ssl,
    /// `udp`
    Udp,
    /// `dtls` (DTLS over UDP)
    Dtls,
}

impl ListenerType {
    /// Every type, in config order.
    pub const ALL: [ListenerType; 4] = [
        ListenerType::Tcp,
        ListenerType::Ssl,
        ListenerType::Udp,
        ListenerType::Dtls,
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerType::Tcp => "tcp",
            ListenerType::Ssl => "ssl",
            ListenerType::Udp => "udp",
            ListenerType::Dtls => "dtls",
        }
    }

    /// The type named `name`.
    pub fn from_name(name: &str) -> Option<ListenerType> {
        ListenerType::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// True for `udp` and `dtls`.
    pub fn is_datagram(self) -> bool {
        matches!(self, ListenerType::Udp | ListenerType::Dtls)
    }
}

/// An address a listener binds, for the check that no two listeners of one transport
/// share one ([`crate::check_binds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindUse {
    /// The address.
    pub addr: SocketAddr,
    /// UDP (udp, dtls) rather than TCP: the two do not clash.
    pub udp: bool,
    /// The listener's key path.
    pub path: String,
}

/// UDP socket options, `udp_options { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpOptions {
    /// Datagrams handled per wake-up. Default `100`.
    pub active_n: u32,
    /// Kernel receive buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recbuf: Option<ByteSize>,
    /// Kernel send buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sndbuf: Option<ByteSize>,
    /// User-space buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<ByteSize>,
    /// SO_REUSEADDR. Default `true`.
    pub reuseaddr: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            active_n: 100,
            recbuf: None,
            sndbuf: None,
            buffer: None,
            reuseaddr: true,
        }
    }
}

/// A load-balancer probe answered by a UDP listener, `health_check { request, reply }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The datagram that asks.
    pub request: String,
    /// The answer.
    pub reply: String,
}

/// One gateway listener (EMQX's gateway listener keys; defaults differ from MQTT's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayListener {
    /// Start the listener. Default `true`.
    pub enable: bool,
    /// Address: a port or `"ip:port"`. Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Bind>,
    /// Most concurrent connections; `None` is `"infinity"`. Default `1024`.
    #[serde(with = "infinity_or")]
    pub max_connections: Option<u64>,
    /// New connections per second; `None` is `"infinity"`. Default `1000`.
    #[serde(with = "rate_or_infinity")]
    pub max_conn_rate: Option<u64>,
    /// Acceptor tasks (accepted for compatibility; one accept loop is used). Default `16`.
    pub acceptors: u32,
    /// Peer address rules, first match wins. Default `[]` (all allowed).
    pub access_rules: Vec<AccessRule>,
    /// Overrides the gateway's mountpoint. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Authenticate this listener's clients. Default `true`.
    pub enable_authn: bool,
    /// The listener's own authenticator (chain `<gateway>:<type>:<name>`), used instead
    /// of the gateway's. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// PROXY protocol header expected (tcp, ssl). Default `false`.
    pub proxy_protocol: bool,
    /// Wait for the PROXY header. Default `"3s"`.
    pub proxy_protocol_timeout: Duration,
    /// TCP options (tcp, ssl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_options: Option<TcpOptions>,
    /// TLS options (ssl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_options: Option<SslOptions>,
    /// UDP options (udp, dtls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_options: Option<UdpOptions>,
    /// DTLS options (dtls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls_options: Option<DtlsOptions>,
    /// Load-balancer probe (udp, dtls). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

impl Default for GatewayListener {
    fn default() -> Self {
        GatewayListener {
            enable: true,
            bind: None,
            max_connections: Some(1024),
            max_conn_rate: Some(1000),
            acceptors: 16,
            access_rules: Vec::new(),
            mountpoint: None,
            enable_authn: true,
            authentication: None,
            proxy_protocol: false,
            proxy_protocol_timeout: Duration::from_secs(3),
            tcp_options: None,
            ssl_options: None,
            udp_options: None,
            dtls_options: None,
            health_check: None,
        }
    }
}

/// A DTLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DtlsVersion {
    /// DTLS 1.2 (RFC 6347).
    #[serde(rename = "dtlsv1.2")]
    Dtlsv1_2,
    /// DTLS 1.0 (refused: not supported).
    #[serde(rename = "dtlsv1")]
    Dtlsv1,
}

/// DTLS settings of a `dtls` gateway listener, `dtls_options { … }` (EMQX's server TLS
/// options with DTLS versions). A DTLS listener starts when it has credentials: a
/// certificate and key here, or `psk_authentication`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DtlsOptions {
    /// Server certificate chain, PEM: a file path (or the PEM text itself). Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certfile: Option<String>,
    /// Private key of `certfile`, PEM. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<String>,
    /// CA certificates that client certificates are checked against, PEM. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacertfile: Option<String>,
    /// Whether client certificates are requested and checked. Default `"verify_none"`.
    pub verify: SslVerify,
    /// With `verify_peer`: whether a client without a certificate is refused.
    /// Default `false`.
    pub fail_if_no_peer_cert: bool,
    /// DTLS versions offered. Default `["dtlsv1.2"]`.
    pub versions: Vec<DtlsVersion>,
    /// Cipher suites offered (OpenSSL names); empty offers PSK-AES128-CCM8,
    /// PSK-AES128-GCM-SHA256 and ECDHE suites. Default `[]`.
    pub ciphers: Vec<String>,
    /// Longest chain of intermediate certificates accepted from a client. Default `10`.
    pub depth: u8,
    /// Password of an encrypted `keyfile`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// How long the DTLS handshake may take. Default `"15s"`.
    pub handshake_timeout: Duration,
}

impl Default for DtlsOptions {
    fn default() -> Self {
        DtlsOptions {
            certfile: None,
            keyfile: None,
            cacertfile: None,
            verify: SslVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            versions: vec![DtlsVersion::Dtlsv1_2],
            ciphers: Vec::new(),
            depth: 10,
            password: None,
            handshake_timeout: Duration::from_secs(15),
        }
    }
}
