//! Junction's configuration: an EMQX 5.x-style HOCON file with the same key names
//! (`mqtt.max_packet_size`, `listeners.tcp.default.bind`, …), overridden by
//! `JUNCTION_*` environment variables.
//!
//! Layers, lowest first: built-in defaults, the file, the environment. The
//! environment variable `JUNCTION_<PATH>` sets the key at `<PATH>`, whose segments
//! are separated by `__` and matched case-insensitively (a segment naming no
//! existing key becomes a lowercase key, e.g. a new listener name):
//! `JUNCTION_LISTENERS__TCP__DEFAULT__BIND=0.0.0.0:1884`,
//! `JUNCTION_MQTT__MAX_PACKET_SIZE=2MB`. The value is read as HOCON (numbers,
//! booleans, arrays); anything else is taken as a string.
//!
//! Unknown keys and bad values are refused with the full key path:
//! `listeners.tcp.default.bnd: unknown key (did you mean `bind`?)`.

pub mod authn;
mod error;
mod gateway;
mod key_status;
mod keys;
mod listener;
mod mqtt;
mod sections;
mod tree;
mod units;
mod unsupported;
mod validate;

pub use error::ConfigError;
pub use gateway::{
    BindUse, ClientInfoOverride, DtlsOptions, DtlsVersion, GatewayListener, GatewayListeners,
    Gateways, HealthCheck, ListenerType, UdpOptions, EMQX_GATEWAYS,
};
pub use key_status::{
    audit, key_list_markdown, key_matches, key_status, key_status_in, KeyStatus, KeyTable,
    KEY_STATUS,
};
pub use keys::{accepted_keys, keys_of};
pub use listener::{
    AccessAction, AccessRule, AccessTarget, Listener, ListenerKind, Listeners, Piggyback,
    SslOptions, SslVerify, TcpOptions, TlsVersion, WebsocketOptions, DEFAULT_LISTENER_NAME,
};
pub use mqtt::{MqttConfig, MqueueDefaultPriority, PeerCertAs, SharedSubscriptionStrategy};
pub use sections::{
    ApiKeyConfig, AuthorizationConfig, AuthzCache, AuthzVerdict, BrokerConfig, ConsoleLog,
    DashboardConfig, DashboardHttpListener, DashboardHttpsListener, DashboardListeners, DenyAction,
    DurableSessionsConfig, LogConfig, LogLevel, NodeConfig, PrometheusConfig, PskAuthentication,
    SysEventMessages, SysTopicsConfig,
};
pub use units::{Bind, ByteSize, Duration};
pub use unsupported::not_supported;
pub use validate::check_binds;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's name and data directory, `node { … }`.
    pub node: NodeConfig,
    /// MQTT protocol limits and session defaults, `mqtt { … }`.
    pub mqtt: MqttConfig,
    /// MQTT listeners, `listeners.<type>.<name> { … }`. Default: `tcp.default` on
    /// port 1883 and `ws.default` on port 8083.
    pub listeners: Listeners,
    /// Broker internals, `broker { … }`.
    pub broker: BrokerConfig,
    /// `$SYS` topic publishing, `sys_topics { … }`.
    pub sys_topics: SysTopicsConfig,
    /// Logging, `log { … }`.
    pub log: LogConfig,
    /// Dashboard / management API, `dashboard { … }`.
    pub dashboard: DashboardConfig,
    /// Management API keys, `api_key { … }`.
    pub api_key: ApiKeyConfig,
    /// The Prometheus endpoint, `prometheus { … }`.
    pub prometheus: PrometheusConfig,
    /// Protocol gateways, `gateway.<name> { … }`, as written: each gateway crate reads
    /// its own section ([`Gateways::section`]).
    #[serde(skip)]
    pub gateway: Gateways,
    /// The data file's commit cadence, `durable_sessions { … }`.
    pub durable_sessions: DurableSessionsConfig,
    /// The MQTT authentication chain (`mqtt:global`), tried in order. Default `[]`:
    /// clients are let in.
    pub authentication: Vec<authn::AuthnConfig>,
    /// Central authorization, `authorization { … }`.
    pub authorization: AuthorizationConfig,
    /// TLS-PSK identities for DTLS listeners, `psk_authentication { … }`.
    pub psk_authentication: PskAuthentication,
}

impl Config {
    /// Load from a HOCON file (`None`: no file, all defaults), then apply
    /// `JUNCTION_*` overrides from `env`. `env` (typically `std::env::vars()`) also
    /// feeds `${VAR}` substitutions in the file.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let file = match path {
            None => tree::Object::new(),
            Some(path) => {
                // Checked first so a missing file is an Io error, not a parse error.
                std::fs::metadata(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let parsed =
                    hocon::parse_file_with_env(path, &env).map_err(|error| ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: error.to_string(),
                    })?;
                tree::root_object(&parsed)
            }
        };
        Self::from_layers(file, &env)
    }

    /// Parse HOCON `text` (as if it were the config file), then apply `JUNCTION_*`
    /// overrides from `env`.
    pub fn from_str_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let parsed = hocon::parse_with_env(text, &env).map_err(|error| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message: error.to_string(),
        })?;
        Self::from_layers(tree::root_object(&parsed), &env)
    }

    fn from_layers(
        file: tree::Object,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut root = tree::defaults();
        tree::merge_into(&mut root, file);
        let origins = tree::apply_env(&mut root, env)?;
        let blame = |error| tree::blame_env(error, &origins);
        tree::complete_listeners(&mut root).map_err(blame)?;
        let gateway = root.shift_remove("gateway");
        let mut config: Config = tree::deserialize(root).map_err(blame)?;
        config.gateway = Gateways::from_tree(gateway, &origins)?;
        validate::validate(&config).map_err(blame)?;
        unsupported::refuse(&config).map_err(blame)?;
        Ok(config)
    }

    /// The effective configuration as JSON, for the management API. Durations and
    /// sizes appear as text (`"15s"`, `"1MB"`), `"infinity"`/`"disabled"` as such,
    /// and every string under a `password` key is replaced by `"******"`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("config always serializes to JSON");
        value["gateway"] = self.gateway.to_json();
        redact_passwords(&mut value);
        value
    }
}

fn redact_passwords(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "password" && inner.is_string() {
                    *inner = serde_json::Value::String("******".to_string());
                } else {
                    redact_passwords(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_passwords),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(text: &str) -> Config {
        Config::from_str_with_env(text, no_env()).unwrap()
    }

    fn invalid(text: &str, vars: &[(&str, &str)]) -> (String, String) {
        match Config::from_str_with_env(text, env(vars)) {
            Err(ConfigError::Invalid { key_path, message }) => (key_path, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn no_file_gives_defaults_with_tcp_and_ws_listeners_only() {
        let config = Config::load(None, no_env()).unwrap();
        assert_eq!(config.listeners.tcp["default"].bind, Bind::any(1883));
        assert_eq!(config.listeners.ws["default"].bind, Bind::any(8083));
        assert!(config.listeners.ssl.is_empty());
        assert!(config.listeners.wss.is_empty());
        let ws = config.listeners.ws["default"].websocket.as_ref().unwrap();
        assert_eq!(ws.mqtt_path, "/mqtt");
        assert!(config.listeners.tcp["default"].websocket.is_none());
        assert_eq!(config.mqtt, MqttConfig::default());
        assert_eq!(config.mqtt.max_packet_size.as_u64(), 1_048_576);
        assert_eq!(config.node.name, "junction@127.0.0.1");
        assert_eq!(config.dashboard.listeners.http.bind, Bind::any(18083));
        assert_eq!(config.log.console.level, LogLevel::Warning);
        assert_eq!(config, Config::default());
    }

    #[test]
    fn empty_text_equals_typed_defaults() {
        assert_eq!(parse(""), Config::default());
    }

    #[test]
    fn max_packet_size_2mb_is_2_mebibytes() {
        let config = parse(r#"mqtt { max_packet_size = "2MB" }"#);
        assert_eq!(config.mqtt.max_packet_size.as_u64(), 2 * 1024 * 1024);
        let unquoted = parse("mqtt { max_packet_size = 2MB }");
        assert_eq!(unquoted.mqtt.max_packet_size.as_u64(), 2 * 1024 * 1024);
    }

    #[test]
    fn emqx_listener_example_loads() {
        let config = parse(
            r#"listeners.tcp.default { bind = "0.0.0.0:1883"
               max_connections = 1024000 }"#,
        );
        let tcp = &config.listeners.tcp["default"];
        assert_eq!(tcp.bind, Bind::any(1883));
        assert_eq!(tcp.max_connections, Some(1_024_000));
        assert!(config.listeners.ws.contains_key("default"));
    }

    #[test]
    fn file_listener_keys_merge_over_defaults() {
        let config = parse(
            "listeners.tcp.default { bind = 1884 }\n\
             listeners.tcp.internal { bind = \"127.0.0.1:11883\" }\n\
             listeners.ws.default.enable = false",
        );
        assert_eq!(config.listeners.tcp["default"].bind, Bind::any(1884));
        assert_eq!(
            config.listeners.tcp["internal"].bind.to_string(),
            "127.0.0.1:11883"
        );
        assert!(!config.listeners.ws["default"].enable);
        let enabled: Vec<_> = config
            .listeners
            .enabled()
            .map(|(kind, name, _)| format!("{kind}:{name}"))
            .collect();
        assert_eq!(enabled, ["tcp:default", "tcp:internal"]);
    }

    #[test]
    fn full_emqx_style_file_parses() {
        let text = r#"
            node {
              name = "emqx@127.0.0.1"
              data_dir = "/var/lib/junction"
            }
            mqtt {
              max_packet_size = 1MB
              max_clientid_len = 65535
              max_topic_levels = 128
              max_qos_allowed = 1
              max_topic_alias = 65535
              retain_available = true
              wildcard_subscription = true
              shared_subscription = true
              exclusive_subscription = false
              ignore_loop_deliver = false
              strict_mode = true
              idle_timeout = 15s
              keepalive_multiplier = 1.5
              server_keepalive = 60
              max_subscriptions = infinity
              upgrade_qos = false
              max_inflight = 32
              retry_interval = 30s
              max_awaiting_rel = 100
              await_rel_timeout = 300s
              session_expiry_interval = 2h
              max_mqueue_len = 1000
              mqueue_store_qos0 = true
              use_username_as_clientid = false
              peer_cert_as_username = disabled
              peer_cert_as_clientid = disabled
              response_information = ""
              shared_subscription_strategy = hash_clientid
              message_expiry_interval = 1d
            }
            listeners.tcp.default {
              bind = "0.0.0.0:1883"
              max_connections = 1024000
              max_conn_rate = "1000/s"
              mountpoint = "tenant/${clientid}/"
              access_rules = ["deny 192.168.1.0/24", "allow all"]
              proxy_protocol = true
              proxy_protocol_timeout = 3s
              tcp_options { backlog = 2048, send_timeout = 10s, recbuf = 64KB }
            }
            listeners.ssl.default {
              bind = "0.0.0.0:8883"
              ssl_options {
                certfile = "etc/certs/cert.pem"
                keyfile = "etc/certs/key.pem"
                cacertfile = "etc/certs/cacert.pem"
                verify = verify_peer
                fail_if_no_peer_cert = true
                versions = ["tlsv1.3"]
              }
            }
            listeners.ws.default {
              bind = "0.0.0.0:8083"
              websocket { mqtt_path = "/mqtt", mqtt_piggyback = multiple, max_frame_size = 1MB }
            }
            listeners.wss.default {
              bind = "[::]:8084"
              ssl_options { certfile = "c.pem", keyfile = "k.pem" }
            }
            broker { enable_session_registry = true }
            sys_topics {
              sys_msg_interval = 2m
              sys_heartbeat_interval = disabled
              sys_event_messages { client_disconnected = false }
            }
            log.console { enable = true, level = debug }
            dashboard.listeners.http { enable = false, bind = 18083 }
            gateway.stomp {
              mountpoint = "stomp/"
              listeners.tcp.default { bind = 61613, max_connections = 1024 }
            }
        "#;
        let config = parse(text);
        assert_eq!(config.node.data_dir, PathBuf::from("/var/lib/junction"));
        let mqtt = &config.mqtt;
        assert_eq!(mqtt.max_qos_allowed, 1);
        assert_eq!(mqtt.server_keepalive, Some(60));
        assert_eq!(mqtt.max_subscriptions, None);
        assert_eq!(mqtt.session_expiry_interval, Duration::from_secs(7200));
        assert_eq!(
            mqtt.message_expiry_interval,
            Some(Duration::from_secs(86_400))
        );
        assert!(mqtt.strict_mode);
        assert_eq!(
            mqtt.shared_subscription_strategy,
            SharedSubscriptionStrategy::HashClientid
        );
        let tcp = &config.listeners.tcp["default"];
        assert_eq!(tcp.max_conn_rate, Some(1000));
        assert_eq!(tcp.mountpoint, "tenant/${clientid}/");
        assert_eq!(tcp.access_rules.len(), 2);
        assert!(tcp.proxy_protocol);
        assert_eq!(tcp.tcp_options.backlog, 2048);
        assert_eq!(tcp.tcp_options.recbuf, Some(ByteSize::from_kb(64)));
        assert_eq!(tcp.tcp_options.sndbuf, None);
        let ssl = config.listeners.ssl["default"]
            .ssl_options
            .as_ref()
            .unwrap();
        assert_eq!(ssl.verify, SslVerify::VerifyPeer);
        assert_eq!(ssl.versions, [TlsVersion::Tlsv1_3]);
        assert_eq!(ssl.depth, 10);
        let ws = config.listeners.ws["default"].websocket.as_ref().unwrap();
        assert_eq!(ws.mqtt_piggyback, Piggyback::Multiple);
        assert_eq!(ws.max_frame_size, Some(ByteSize::from_mb(1)));
        assert_eq!(ws.subprotocols().count(), 4);
        let wss = &config.listeners.wss["default"];
        assert_eq!(wss.bind.to_string(), "[::]:8084");
        assert!(wss.ssl_options.is_some() && wss.websocket.is_some());
        assert_eq!(
            config.sys_topics.sys_msg_interval,
            Some(Duration::from_secs(120))
        );
        assert_eq!(config.sys_topics.sys_heartbeat_interval, None);
        assert!(!config.sys_topics.sys_event_messages.client_disconnected);
        assert!(config.sys_topics.sys_event_messages.client_connected);
        assert_eq!(config.log.console.level, LogLevel::Debug);
        let stomp: GatewayProbe = config.gateway.section("stomp").unwrap();
        assert_eq!(stomp.mountpoint, "stomp/");
        let l = &stomp.listeners.tcp["default"];
        assert_eq!(l.bind, Some(Bind::any(61613)));
        assert_eq!(l.max_connections, Some(1024));
    }

    /// What a gateway crate's section type looks like, for these tests.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct GatewayProbe {
        mountpoint: String,
        frame: Option<serde_json::Value>,
        listeners: GatewayListeners,
    }

    #[test]
    fn gateway_sections_are_kept_as_written_for_their_gateway_to_read() {
        let config = parse(
            r#"
            gateway.stomp {
              mountpoint = "stomp/"
              frame { max_headers = 10, max_headers_length = 1024, max_body_length = 65536 }
              listeners.tcp.default { bind = 61613, acceptors = 16, max_connections = 1024000, max_conn_rate = 1000 }
            }
            gateway.coap { mountpoint = "coap/" }
            "#,
        );
        assert_eq!(
            config.gateway.names().collect::<Vec<_>>(),
            ["stomp", "coap"]
        );
        let stomp: GatewayProbe = config.gateway.section("stomp").unwrap();
        assert_eq!(
            stomp.listeners.tcp["default"].max_connections,
            Some(1_024_000)
        );
        // A section not written reads as its type's defaults.
        let absent: GatewayProbe = config.gateway.section("mqttsn").unwrap();
        assert!(absent.listeners.tcp.is_empty());
        // Errors name the whole path, and the variable that set the key.
        let config = Config::from_str_with_env(
            "gateway.stomp.frame = {}",
            env(&[("JUNCTION_GATEWAY__STOMP__MOUNTPOINTS", "x")]),
        )
        .unwrap();
        match config.gateway.section::<GatewayProbe>("stomp") {
            Err(ConfigError::Invalid { key_path, message }) => {
                assert_eq!(key_path, "gateway.stomp.mountpoints");
                assert!(message.contains("did you mean `mountpoint`"), "{message}");
                assert!(
                    message.contains("JUNCTION_GATEWAY__STOMP__MOUNTPOINTS"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let (path, _) = invalid("gateway.stomp = 3", &[]);
        assert_eq!(path, "gateway.stomp");
    }

    #[test]
    fn gateway_listeners_are_checked_for_type_bind_and_name() {
        let tcp_only = [ListenerType::Tcp, ListenerType::Ssl];
        let check = |text: &str| {
            let config = parse(text);
            let probe: GatewayProbe = config.gateway.section("stomp").unwrap();
            match probe.listeners.check("stomp", &tcp_only) {
                Err(ConfigError::Invalid { key_path, message }) => (key_path, message),
                other => panic!("{text}: {other:?}"),
            }
        };
        let (path, message) = check("gateway.stomp.listeners.udp.x.bind = 1");
        assert_eq!(path, "gateway.stomp.listeners.udp.x");
        assert!(message.contains("stomp"), "{message}");
        let (path, _) = check("gateway.stomp.listeners.tcp.x.enable = true");
        assert_eq!(path, "gateway.stomp.listeners.tcp.x.bind");
        let (path, _) = check("gateway.stomp.listeners.tcp.9x.bind = 1");
        assert_eq!(path, "gateway.stomp.listeners.tcp.9x");
        let (path, message) = check("gateway.stomp.listeners.tcp.x { bind = 1, udp_options {} }");
        assert_eq!(path, "gateway.stomp.listeners.tcp.x.udp_options");
        assert!(message.contains("udp and dtls"), "{message}");
    }

    #[test]
    fn binds_clash_within_a_transport_only() {
        let tcp = |port, path: &str| BindUse {
            addr: std::net::SocketAddr::from(([0, 0, 0, 0], port)),
            udp: false,
            path: path.into(),
        };
        let udp = |port, path: &str| BindUse {
            udp: true,
            ..tcp(port, path)
        };
        assert!(check_binds([tcp(1883, "a"), udp(1883, "b"), tcp(0, "c"), tcp(0, "d")]).is_ok());
        match check_binds([
            udp(5683, "gateway.x.listeners.udp.a"),
            udp(5683, "gateway.y.listeners.udp.b"),
        ]) {
            Err(ConfigError::Invalid { key_path, message }) => {
                assert_eq!(key_path, "gateway.y.listeners.udp.b.bind");
                assert!(message.contains("gateway.x.listeners.udp.a"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn worker_threads_is_auto_or_a_number() {
        let auto = Config::from_str_with_env("", env(&[])).unwrap();
        assert_eq!(auto.node.worker_threads, None);
        let one = Config::from_str_with_env("node.worker_threads = 1", env(&[])).unwrap();
        assert_eq!(one.node.worker_threads, Some(1));
        let back = Config::from_str_with_env(
            "node.worker_threads = auto",
            env(&[("JUNCTION_NODE__WORKER_THREADS", "4")]),
        )
        .unwrap();
        assert_eq!(back.node.worker_threads, Some(4));
    }

    #[test]
    fn env_variables_naming_no_config_section_are_ignored() {
        let config = Config::from_str_with_env(
            "",
            env(&[
                ("JUNCTION_BIN", "/usr/bin/junction"),
                ("JUNCTION_LOG_DIR", "/tmp"),
            ]),
        )
        .expect("unrelated JUNCTION_* variables do not stop the start");
        assert_eq!(config, Config::from_str_with_env("", env(&[])).unwrap());
    }

    #[test]
    fn env_overrides_nested_keys_split_on_double_underscore() {
        let config = Config::from_str_with_env(
            "listeners.tcp.default { bind = 1884 }",
            env(&[
                ("JUNCTION_LISTENERS__TCP__DEFAULT__BIND", "0.0.0.0:1885"),
                ("JUNCTION_MQTT__MAX_PACKET_SIZE", "2MB"),
                ("junction_mqtt__max_inflight", "1"),
                ("JUNCTION_mqtt__Max_Inflight", "64"),
                ("JUNCTION_LISTENERS__WS__DEFAULT__ENABLE", "false"),
                (
                    "JUNCTION_LISTENERS__TCP__DEFAULT__ACCESS_RULES",
                    "[\"deny all\"]",
                ),
                ("JUNCTION_SYS_TOPICS__SYS_MSG_INTERVAL", "disabled"),
                ("PATH", "/usr/bin"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        let tcp = &config.listeners.tcp["default"];
        assert_eq!(tcp.bind, Bind::any(1885));
        assert_eq!(tcp.access_rules[0].to_string(), "deny all");
        assert_eq!(config.mqtt.max_packet_size.as_u64(), 2 * 1024 * 1024);
        assert_eq!(config.mqtt.max_inflight, 64);
        assert!(!config.listeners.ws["default"].enable);
        assert_eq!(config.sys_topics.sys_msg_interval, None);
    }

    #[test]
    fn env_can_add_a_listener_with_its_kind_default_port() {
        let config = Config::load(
            None,
            env(&[
                (
                    "JUNCTION_LISTENERS__SSL__EDGE__SSL_OPTIONS__CERTFILE",
                    "/c.pem",
                ),
                (
                    "JUNCTION_LISTENERS__SSL__EDGE__SSL_OPTIONS__KEYFILE",
                    "/k.pem",
                ),
            ]),
        )
        .unwrap();
        let edge = &config.listeners.ssl["edge"];
        assert_eq!(edge.bind, Bind::any(8883));
        assert_eq!(
            edge.ssl_options.as_ref().unwrap().certfile.as_deref(),
            Some("/c.pem")
        );
    }

    #[test]
    fn env_feeds_file_substitutions() {
        let config = Config::from_str_with_env(
            "node.name = ${NODE_NAME}",
            env(&[("NODE_NAME", "j1@10.0.0.1")]),
        )
        .unwrap();
        assert_eq!(config.node.name, "j1@10.0.0.1");
    }

    #[test]
    fn unknown_key_error_names_the_full_path() {
        let (path, message) = invalid("listeners.tcp.default { bnd = 1884 }", &[]);
        assert_eq!(path, "listeners.tcp.default.bnd");
        assert!(message.starts_with("unknown key"), "{message}");
        assert!(message.contains("`bind`"), "{message}");

        let (path, _) = invalid("listeners.tcp.default.tcp_options { nodelai = true }", &[]);
        assert_eq!(path, "listeners.tcp.default.tcp_options.nodelai");

        let (path, message) = invalid("cluster { name = emqxcl }", &[]);
        assert_eq!(path, "cluster");
        assert!(message.starts_with("unknown key"), "{message}");

        let err = Config::from_str_with_env("mqtt { max_pakcet_size = 1MB }", no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mqtt.max_pakcet_size: unknown key"),
            "{err}"
        );
    }

    #[test]
    fn unknown_env_key_is_an_error_naming_the_variable() {
        let (path, message) = invalid("", &[("JUNCTION_MQTT__MAX_PAKCET_SIZE", "1MB")]);
        assert_eq!(path, "mqtt.max_pakcet_size");
        assert!(message.starts_with("unknown key"), "{message}");
        assert!(
            message.contains("JUNCTION_MQTT__MAX_PAKCET_SIZE"),
            "{message}"
        );

        // A value is not a section: the error is about the value.
        let (path, message) = invalid("", &[("JUNCTION_MQTT__MAX_PACKET_SIZE__X", "1")]);
        assert_eq!(path, "mqtt.max_packet_size");
        assert!(
            message.contains("JUNCTION_MQTT__MAX_PACKET_SIZE__X"),
            "{message}"
        );
        let (path, message) = invalid(
            "mqtt.max_packet_size = 1MB",
            &[("JUNCTION_MQTT__MAX_PACKET_SIZE__X", "1")],
        );
        assert_eq!(path, "mqtt.max_packet_size.x");
        assert!(message.contains("not a section"), "{message}");

        let (path, _) = invalid("", &[("JUNCTION_MQTT____X", "1")]);
        assert_eq!(path, "JUNCTION_MQTT____X");
    }

    #[test]
    fn bad_size_and_duration_errors_name_the_path() {
        let err = Config::from_str_with_env(r#"mqtt { max_packet_size = "12XB" }"#, no_env())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"mqtt.max_packet_size: invalid size "12XB" (expected e.g. "1MB")"#
        );

        let (path, message) = invalid("mqtt.retry_interval = 30 sec", &[]);
        assert_eq!(path, "mqtt.retry_interval");
        assert!(
            message.starts_with("invalid duration \"30 sec\""),
            "{message}"
        );

        let (path, message) = invalid("listeners.ws.default.tcp_options.send_timeout = soon", &[]);
        assert_eq!(path, "listeners.ws.default.tcp_options.send_timeout");
        assert!(message.starts_with("invalid duration"), "{message}");

        let (path, message) = invalid("", &[("JUNCTION_MQTT__IDLE_TIMEOUT", "15q")]);
        assert_eq!(path, "mqtt.idle_timeout");
        assert!(message.contains("JUNCTION_MQTT__IDLE_TIMEOUT"), "{message}");
    }

    #[test]
    fn bad_values_name_the_path() {
        let (path, message) = invalid("listeners.tcp.default.bind = \"localhost:1883\"", &[]);
        assert_eq!(path, "listeners.tcp.default.bind");
        assert!(message.starts_with("invalid bind address"), "{message}");

        let (path, message) = invalid("mqtt.shared_subscription_strategy = fastest", &[]);
        assert_eq!(path, "mqtt.shared_subscription_strategy");
        assert!(message.contains("round_robin"), "{message}");

        let (path, _) = invalid("mqtt.max_qos_allowed = 3", &[]);
        assert_eq!(path, "mqtt.max_qos_allowed");

        let (path, _) = invalid("mqtt.max_packet_size = 1GB", &[]);
        assert_eq!(path, "mqtt.max_packet_size");

        let (path, _) = invalid("listeners.tcp.default.max_connections = lots", &[]);
        assert_eq!(path, "listeners.tcp.default.max_connections");

        let (path, _) = invalid("listeners.tcp.default.access_rules = [\"permit all\"]", &[]);
        assert_eq!(path, "listeners.tcp.default.access_rules[0]");

        let (path, message) = invalid("mqtt = 5", &[]);
        assert_eq!(path, "mqtt");
        assert!(message.contains("section"), "{message}");
    }

    #[test]
    fn enabled_ssl_listener_needs_certfile_and_keyfile() {
        let (path, message) = invalid("listeners.ssl.default { bind = 8883 }", &[]);
        assert_eq!(path, "listeners.ssl.default.ssl_options.certfile");
        assert!(message.contains("required"), "{message}");

        let (path, _) = invalid(
            "listeners.wss.default.ssl_options.certfile = \"c.pem\"",
            &[],
        );
        assert_eq!(path, "listeners.wss.default.ssl_options.keyfile");

        let disabled = parse("listeners.ssl.default { enable = false }");
        assert!(!disabled.listeners.ssl["default"].enable);
    }

    #[test]
    fn listener_sections_belong_to_their_kinds() {
        let (path, message) = invalid(
            "listeners.tcp.default.ssl_options.certfile = \"c.pem\"",
            &[],
        );
        assert_eq!(path, "listeners.tcp.default.ssl_options");
        assert!(message.starts_with("unknown key"), "{message}");

        let (path, _) = invalid("listeners.ssl.a.websocket.compress = true", &[]);
        assert_eq!(path, "listeners.ssl.a.websocket");

        let (path, _) = invalid("listeners.udp.default.bind = 1", &[]);
        assert_eq!(path, "listeners.udp");

        let (path, _) = invalid("listeners.tcp.\"9lives\".bind = 1", &[]);
        assert_eq!(path, "listeners.tcp.9lives");
    }

    #[test]
    fn two_enabled_listeners_cannot_share_an_address() {
        let (path, message) = invalid("listeners.tcp.other.bind = 8083", &[]);
        assert_eq!(path, "listeners.ws.default.bind");
        assert!(message.contains("listeners.tcp.other"), "{message}");

        parse("listeners.tcp.other.bind = 8083\nlisteners.ws.default.enable = false");
    }

    #[test]
    fn missing_file_is_an_io_error_and_bad_syntax_a_parse_error() {
        let missing = Path::new("/nonexistent/junction.conf");
        assert!(matches!(
            Config::load(Some(missing), no_env()),
            Err(ConfigError::Io { path, .. }) if path == missing
        ));
        assert!(matches!(
            Config::from_str_with_env("mqtt {", no_env()),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("junction-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("junction.conf");
        std::fs::write(
            &file,
            "mqtt.max_inflight = 10\nlisteners.tcp.default.bind = 2883\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), no_env());
        std::fs::remove_dir_all(&dir).unwrap();
        let config = config.unwrap();
        assert_eq!(config.mqtt.max_inflight, 10);
        assert_eq!(config.listeners.tcp["default"].bind, Bind::any(2883));
    }

    #[test]
    fn to_json_writes_units_as_text_and_round_trips() {
        let config = parse(
            "mqtt { max_awaiting_rel = infinity, max_subscriptions = 10 }\n\
             listeners.tcp.default { max_conn_rate = 500, tcp_options.recbuf = 64KB }\n\
             gateway.stomp.enable = true",
        );
        let json = config.to_json();
        assert_eq!(json["mqtt"]["max_packet_size"], "1MB");
        assert_eq!(json["mqtt"]["idle_timeout"], "15s");
        assert_eq!(json["mqtt"]["session_expiry_interval"], "2h");
        assert_eq!(json["mqtt"]["max_awaiting_rel"], "infinity");
        assert_eq!(json["mqtt"]["server_keepalive"], "disabled");
        assert_eq!(json["listeners"]["tcp"]["default"]["bind"], "0.0.0.0:1883");
        assert_eq!(
            json["listeners"]["tcp"]["default"]["access_rules"][0],
            "allow all"
        );
        assert!(json["listeners"]["tcp"]["default"]
            .get("ssl_options")
            .is_none());
        let reparsed = Config::from_str_with_env(&json.to_string(), no_env()).unwrap();
        assert_eq!(reparsed, config);
    }

    #[test]
    fn to_json_hides_passwords() {
        let config = parse("gateway.stomp.clientinfo_override.password = hunter2");
        assert_eq!(
            config.to_json()["gateway"]["stomp"]["clientinfo_override"]["password"],
            "******"
        );
        let config = parse("gateway.stomp.clientinfo_override.password = hunter2");
        let json = config.to_json();
        assert_eq!(
            json["gateway"]["stomp"]["clientinfo_override"]["password"],
            "******"
        );
    }
}
