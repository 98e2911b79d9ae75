//! The `listeners { … }` section: `listeners.<type>.<name> { … }` for the MQTT
//! listener types `tcp`, `ssl`, `ws` and `wss` (EMQX 5.x names).

use crate::units::{infinity_or, rate_or_infinity, Bind, ByteSize, Duration};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The transport a listener speaks, the `<type>` in `listeners.<type>.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Ssl,
    /// WebSocket over plain TCP.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl ListenerKind {
    /// Every kind, in config order.
    pub const ALL: [ListenerKind; 4] = [
        ListenerKind::Tcp,
        ListenerKind::Ssl,
        ListenerKind::Ws,
        ListenerKind::Wss,
    ];

    /// The config key (`"tcp"`, `"ssl"`, `"ws"`, `"wss"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ssl => "ssl",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    /// Whether the listener terminates TLS (has `ssl_options`).
    pub const fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Ssl | ListenerKind::Wss)
    }

    /// Whether the listener speaks WebSocket (has `websocket`).
    pub const fn is_websocket(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }

    /// The port a listener of this kind binds when `bind` is not given
    /// (1883, 8883, 8083, 8084).
    pub const fn default_port(self) -> u16 {
        match self {
            ListenerKind::Tcp => 1883,
            ListenerKind::Ssl => 8883,
            ListenerKind::Ws => 8083,
            ListenerKind::Wss => 8084,
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// All MQTT listeners, `listeners { tcp.<name> {…}, ssl.<name> {…}, ws.<name> {…},
/// wss.<name> {…} }`, each a map from listener name to settings.
///
/// The built-in listeners `tcp.default` (`0.0.0.0:1883`) and `ws.default`
/// (`0.0.0.0:8083`) always exist; the file's keys are merged over them, and
/// `enable = false` turns one off. There are no default `ssl`/`wss` listeners, since
/// they need a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listeners {
    /// Plain TCP listeners by name. Default: `default` on `0.0.0.0:1883`.
    pub tcp: BTreeMap<String, Listener>,
    /// TLS listeners by name. Default: none.
    pub ssl: BTreeMap<String, Listener>,
    /// WebSocket listeners by name. Default: `default` on `0.0.0.0:8083`.
    pub ws: BTreeMap<String, Listener>,
    /// WebSocket-over-TLS listeners by name. Default: none.
    pub wss: BTreeMap<String, Listener>,
}

impl Default for Listeners {
    fn default() -> Self {
        let default_one =
            |kind| BTreeMap::from([(DEFAULT_LISTENER_NAME.to_string(), Listener::new(kind))]);
        Listeners {
            tcp: default_one(ListenerKind::Tcp),
            ssl: BTreeMap::new(),
            ws: default_one(ListenerKind::Ws),
            wss: BTreeMap::new(),
        }
    }
}

/// Name of the built-in listeners (`listeners.tcp.default`, `listeners.ws.default`).
pub const DEFAULT_LISTENER_NAME: &str = "default";

impl Listeners {
    /// The listeners of one kind.
    pub fn of_kind(&self, kind: ListenerKind) -> &BTreeMap<String, Listener> {
        match kind {
            ListenerKind::Tcp => &self.tcp,
            ListenerKind::Ssl => &self.ssl,
            ListenerKind::Ws => &self.ws,
            ListenerKind::Wss => &self.wss,
        }
    }

    /// Every listener with its kind and name (EMQX's listener id is `"<kind>:<name>"`),
    /// enabled or not.
    pub fn iter(&self) -> impl Iterator<Item = (ListenerKind, &str, &Listener)> + '_ {
        ListenerKind::ALL.into_iter().flat_map(move |kind| {
            self.of_kind(kind)
                .iter()
                .map(move |(name, listener)| (kind, name.as_str(), listener))
        })
    }

    /// The listeners with `enable = true`.
    pub fn enabled(&self) -> impl Iterator<Item = (ListenerKind, &str, &Listener)> + '_ {
        self.iter().filter(|(_, _, listener)| listener.enable)
    }

    /// The addresses the enabled listeners bind (all TCP), for [`crate::check_binds`].
    pub fn binds(&self) -> Vec<crate::BindUse> {
        self.enabled()
            .map(|(kind, name, l)| crate::BindUse {
                addr: l.bind.addr(),
                udp: false,
                path: crate::tree::render_path(["listeners", kind.as_str(), name]),
            })
            .collect()
    }
}

/// One MQTT listener, `listeners.<type>.<name> { … }`.
///
/// `ssl_options` is `Some` exactly for `ssl` and `wss` listeners, `websocket` exactly
/// for `ws` and `wss` listeners; the other kinds reject those keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listener {
    /// Whether the listener is started. Default `true`.
    pub enable: bool,
    /// Address to listen on: a port or `"ip:port"`. Default by type: tcp `1883`,
    /// ssl `8883`, ws `8083`, wss `8084` (all on `0.0.0.0`).
    pub bind: Bind,
    /// Most concurrent connections; `None` is `"infinity"`. Default `"infinity"`.
    #[serde(with = "infinity_or")]
    pub max_connections: Option<u64>,
    /// Most new connections accepted per second, `1000` or `"1000/s"`; `None` is
    /// `"infinity"`. Default `"infinity"`.
    #[serde(with = "rate_or_infinity")]
    pub max_conn_rate: Option<u64>,
    /// Prefix added to every topic published or subscribed through this listener;
    /// empty for none. Placeholders `${clientid}`, `${username}` are expanded.
    /// Default `""`.
    pub mountpoint: String,
    /// Zone whose settings apply to this listener's clients. Default `"default"`.
    pub zone: String,
    /// Whether clients on this listener are authenticated. Default `true`.
    pub enable_authn: bool,
    /// Whether connections start with a PROXY protocol (v1 or v2) header.
    /// Default `false`.
    pub proxy_protocol: bool,
    /// How long to wait for the PROXY protocol header. Default `"3s"`.
    pub proxy_protocol_timeout: Duration,
    /// Which peer addresses may connect, first match wins: `"allow all"`,
    /// `"deny 192.168.0.0/24"`, `"allow 10.0.0.1, 10.0.0.2"`. Default `["allow all"]`.
    pub access_rules: Vec<AccessRule>,
    /// Socket options. Default: see [`TcpOptions`].
    pub tcp_options: TcpOptions,
    /// TLS settings; `Some` for `ssl` and `wss` listeners only, which need at least
    /// `certfile` and `keyfile` when enabled. Default: see [`SslOptions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_options: Option<SslOptions>,
    /// WebSocket settings; `Some` for `ws` and `wss` listeners only.
    /// Default: see [`WebsocketOptions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebsocketOptions>,
}

impl Listener {
    /// A listener of `kind` with every setting at its default, on the kind's
    /// default port.
    pub fn new(kind: ListenerKind) -> Listener {
        Listener {
            enable: true,
            bind: Bind::any(kind.default_port()),
            max_connections: None,
            max_conn_rate: None,
            mountpoint: String::new(),
            zone: "default".to_string(),
            enable_authn: true,
            proxy_protocol: false,
            proxy_protocol_timeout: Duration::from_secs(3),
            access_rules: vec![AccessRule::allow_all()],
            tcp_options: TcpOptions::default(),
            ssl_options: kind.is_tls().then(SslOptions::default),
            websocket: kind.is_websocket().then(WebsocketOptions::default),
        }
    }
}

impl Default for Listener {
    /// A plain TCP listener on `0.0.0.0:1883`.
    fn default() -> Self {
        Listener::new(ListenerKind::Tcp)
    }
}

/// Socket options, `listeners.<type>.<name>.tcp_options { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpOptions {
    /// Length of the queue of connections waiting to be accepted. Default `1024`.
    pub backlog: u32,
    /// How long a socket write may block before the connection is closed.
    /// Default `"15s"`.
    pub send_timeout: Duration,
    /// Whether Nagle's algorithm is off (`TCP_NODELAY`). Default `true`.
    pub nodelay: bool,
    /// Size of the user-space read buffer, in bytes; unset picks automatically.
    /// Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<ByteSize>,
    /// Kernel receive buffer (`SO_RCVBUF`), in bytes; unset keeps the OS default.
    /// Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recbuf: Option<ByteSize>,
    /// Kernel send buffer (`SO_SNDBUF`), in bytes; unset keeps the OS default.
    /// Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sndbuf: Option<ByteSize>,
    /// Whether `SO_REUSEADDR` is set on the listening socket. Default `true`.
    pub reuseaddr: bool,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            backlog: 1024,
            send_timeout: Duration::from_secs(15),
            nodelay: true,
            buffer: None,
            recbuf: None,
            sndbuf: None,
            reuseaddr: true,
        }
    }
}

/// TLS settings of `ssl` and `wss` listeners, `ssl_options { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslOptions {
    /// Server certificate chain, PEM: a file path (or the PEM text itself).
    /// Required for an enabled listener. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certfile: Option<String>,
    /// Private key of `certfile`, PEM: a file path (or the PEM text itself).
    /// Required for an enabled listener. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<String>,
    /// CA certificates that client certificates are checked against, PEM: a file
    /// path (or the PEM text itself). Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacertfile: Option<String>,
    /// Whether client certificates are requested and checked. Default `"verify_none"`.
    pub verify: SslVerify,
    /// With `verify_peer`: whether a client without a certificate is refused.
    /// Default `false`.
    pub fail_if_no_peer_cert: bool,
    /// TLS versions offered. Default `["tlsv1.3", "tlsv1.2"]`.
    pub versions: Vec<TlsVersion>,
    /// Cipher suites offered (OpenSSL or IANA names); empty offers the library's
    /// defaults. Default `[]`.
    pub ciphers: Vec<String>,
    /// Longest chain of intermediate certificates accepted from a client.
    /// Default `10`.
    pub depth: u8,
    /// Password of an encrypted `keyfile`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// How long the TLS handshake may take. Default `"15s"`.
    pub handshake_timeout: Duration,
}

impl Default for SslOptions {
    fn default() -> Self {
        SslOptions {
            certfile: None,
            keyfile: None,
            cacertfile: None,
            verify: SslVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            versions: vec![TlsVersion::Tlsv1_3, TlsVersion::Tlsv1_2],
            ciphers: Vec::new(),
            depth: 10,
            password: None,
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// Whether a TLS listener asks for client certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslVerify {
    /// Client certificates are not requested.
    #[default]
    VerifyNone,
    /// Client certificates are requested and checked against `cacertfile`.
    VerifyPeer,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2, `"tlsv1.2"`.
    #[serde(rename = "tlsv1.2")]
    Tlsv1_2,
    /// TLS 1.3, `"tlsv1.3"`.
    #[serde(rename = "tlsv1.3")]
    Tlsv1_3,
}

/// WebSocket settings of `ws` and `wss` listeners, `websocket { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebsocketOptions {
    /// HTTP path the WebSocket upgrade is served on. Default `"/mqtt"`.
    pub mqtt_path: String,
    /// Whether one WebSocket frame carries one MQTT packet (`single`) or may carry
    /// several (`multiple`). Default `"multiple"`.
    pub mqtt_piggyback: Piggyback,
    /// Whether permessage-deflate compression is negotiated. Default `false`.
    pub compress: bool,
    /// How long a connection may take to complete the HTTP upgrade. Default `"7200s"`.
    pub idle_timeout: Duration,
    /// Largest WebSocket frame accepted, in bytes; `None` is `"infinity"`.
    /// Default `"infinity"`.
    #[serde(with = "infinity_or")]
    pub max_frame_size: Option<ByteSize>,
    /// Whether an upgrade request without `Sec-WebSocket-Protocol` is refused.
    /// Default `true`.
    pub fail_if_no_subprotocol: bool,
    /// Comma-separated subprotocols accepted. Default
    /// `"mqtt, mqtt-v3, mqtt-v3.1.1, mqtt-v5"`.
    pub supported_subprotocols: String,
    /// Whether the `Origin` header is checked against `check_origins`.
    /// Default `false`.
    pub check_origin_enable: bool,
    /// With `check_origin_enable`: whether a request without `Origin` is allowed.
    /// Default `true`.
    pub allow_origin_absence: bool,
    /// Comma-separated origins allowed when `check_origin_enable` is set. Default
    /// `"http://localhost:18083, http://127.0.0.1:18083"`.
    pub check_origins: String,
    /// Header carrying the client address when behind a proxy.
    /// Default `"x-forwarded-for"`.
    pub proxy_address_header: String,
    /// Header carrying the client port when behind a proxy.
    /// Default `"x-forwarded-port"`.
    pub proxy_port_header: String,
}

impl WebsocketOptions {
    /// The entries of `supported_subprotocols`, trimmed.
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> + '_ {
        split_list(&self.supported_subprotocols)
    }

    /// The entries of `check_origins`, trimmed.
    pub fn origins(&self) -> impl Iterator<Item = &str> + '_ {
        split_list(&self.check_origins)
    }
}

fn split_list(list: &str) -> impl Iterator<Item = &str> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

impl Default for WebsocketOptions {
    fn default() -> Self {
        WebsocketOptions {
            mqtt_path: "/mqtt".to_string(),
            mqtt_piggyback: Piggyback::Multiple,
            compress: false,
            idle_timeout: Duration::from_secs(7200),
            max_frame_size: None,
            fail_if_no_subprotocol: true,
            supported_subprotocols: "mqtt, mqtt-v3, mqtt-v3.1.1, mqtt-v5".to_string(),
            check_origin_enable: false,
            allow_origin_absence: true,
            check_origins: "http://localhost:18083, http://127.0.0.1:18083".to_string(),
            proxy_address_header: "x-forwarded-for".to_string(),
            proxy_port_header: "x-forwarded-port".to_string(),
        }
    }
}

/// How MQTT packets map onto WebSocket frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Piggyback {
    /// One MQTT packet per frame.
    Single,
    /// A frame may carry several packets.
    #[default]
    Multiple,
}

/// One access rule, `"allow all"`, `"deny 192.168.0.0/24"` or
/// `"allow 10.0.0.1, 10.0.0.0/8"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessRule {
    /// Whether matching peers are let in.
    pub action: AccessAction,
    /// The peers the rule matches (any of them).
    pub targets: Vec<AccessTarget>,
}

/// What an access rule does with a matching peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessAction {
    /// Accept the connection.
    Allow,
    /// Close the connection.
    Deny,
}

/// Peers an access rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessTarget {
    /// Every peer.
    All,
    /// Peers in a network: an address with a prefix length (`/32` or `/128` for one
    /// address).
    Net {
        /// Network address.
        addr: IpAddr,
        /// Leading bits that must match.
        prefix_len: u8,
    },
}

impl AccessRule {
    /// The rule `"allow all"`.
    pub fn allow_all() -> AccessRule {
        AccessRule {
            action: AccessAction::Allow,
            targets: vec![AccessTarget::All],
        }
    }

    /// Whether the rule applies to a peer at `ip`.
    pub fn matches(&self, ip: IpAddr) -> bool {
        self.targets.iter().any(|target| target.matches(ip))
    }
}

impl AccessTarget {
    /// Whether `ip` is in this target.
    pub fn matches(&self, ip: IpAddr) -> bool {
        match *self {
            AccessTarget::All => true,
            AccessTarget::Net { addr, prefix_len } => {
                match (addr.to_canonical(), ip.to_canonical()) {
                    (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                        u128::from(u32::from(net)) << 96,
                        u128::from(u32::from(ip)) << 96,
                        prefix_len,
                    ),
                    (IpAddr::V6(net), IpAddr::V6(ip)) => {
                        prefix_eq(u128::from(net), u128::from(ip), prefix_len)
                    }
                    _ => false,
                }
            }
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix_len: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix_len.min(128)))
        .unwrap_or(0);
    a & mask == b & mask
}

impl FromStr for AccessRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| {
            format!("invalid access rule {text:?}: {why} (expected e.g. \"allow all\", \"deny 10.0.0.0/8\")")
        };
        let trimmed = text.trim();
        let (action, rest) = trimmed
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("missing target"))?;
        let action = match action {
            "allow" => AccessAction::Allow,
            "deny" => AccessAction::Deny,
            _ => return Err(invalid("must start with allow or deny")),
        };
        let targets = rest
            .split(',')
            .map(|target| parse_target(target.trim()).ok_or_else(|| invalid("bad address")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccessRule { action, targets })
    }
}

fn parse_target(text: &str) -> Option<AccessTarget> {
    if text == "all" {
        return Some(AccessTarget::All);
    }
    let (addr, prefix_len) = match text.split_once('/') {
        Some((addr, len)) => (addr.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max_len = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = prefix_len.unwrap_or(max_len);
    (prefix_len <= max_len).then_some(AccessTarget::Net { addr, prefix_len })
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.action {
            AccessAction::Allow => "allow ",
            AccessAction::Deny => "deny ",
        })?;
        for (i, target) in self.targets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match target {
                AccessTarget::All => f.write_str("all")?,
                AccessTarget::Net { addr, prefix_len } => write!(f, "{addr}/{prefix_len}")?,
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for AccessRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for AccessRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules_parse_and_match() {
        let rule: AccessRule = "deny 192.168.0.0/24, 10.0.0.1".parse().unwrap();
        assert_eq!(rule.action, AccessAction::Deny);
        assert!(rule.matches("192.168.0.77".parse().unwrap()));
        assert!(rule.matches("10.0.0.1".parse().unwrap()));
        assert!(!rule.matches("10.0.0.2".parse().unwrap()));
        assert!(rule.matches("::ffff:192.168.0.1".parse().unwrap()));
        assert_eq!(rule.to_string(), "deny 192.168.0.0/24, 10.0.0.1/32");
        assert!("allow all"
            .parse::<AccessRule>()
            .unwrap()
            .matches("::1".parse().unwrap()));
        let v6: AccessRule = "allow 2001:db8::/32".parse().unwrap();
        assert!(v6.matches("2001:db8::1".parse().unwrap()));
        assert!(!v6.matches("2001:db9::1".parse().unwrap()));
        let any: AccessRule = "allow 0.0.0.0/0".parse().unwrap();
        assert!(any.matches("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn access_rules_reject_garbage() {
        for text in [
            "allow",
            "permit all",
            "deny 300.0.0.1",
            "deny 10.0.0.0/33",
            "allow all,",
        ] {
            assert!(text.parse::<AccessRule>().is_err(), "{text:?} accepted");
        }
    }
}
