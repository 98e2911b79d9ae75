//! What Junction does with every key the loader accepts ([`crate::accepted_keys`]): each is
//! honoured, with the test that shows it, or refused by name. A test in this file holds the
//! table against the keys the types accept, so a new key cannot slip in unaccounted for;
//! `docs/CONFIG-KEYS.md` is generated from both.
//!
//! Patterns are key paths whose `*` stands for one segment and a final `**` for any rest.

/// What happens to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Does what EMQX documents; the named test (a Rust `fn` or Python `def` in this
    /// repository) sets it and checks the effect.
    Honoured(&'static str),
    /// Accepted at its default; set to another value (this one, for the check) the loader
    /// refuses it with its path and "not supported yet".
    Unsupported(&'static str),
    /// Not valid where it is written (a listener type, a gateway listener type): the loader
    /// refuses it, naming the key or the section that holds it. The value is for the check.
    Misplaced(&'static str),
}

use KeyStatus::{Honoured as H, Misplaced as M, Unsupported as U};

/// The table, first match wins.
pub const KEY_STATUS: &[(&str, KeyStatus)] = &[
    // -- authentication (the MQTT chain) -------------------------------------------------
    (
        "authentication",
        H("mqtt_clients_authenticate_against_the_built_in_database"),
    ),
    (
        "authentication[].mechanism",
        H("mqtt_clients_authenticate_against_the_built_in_database"),
    ),
    (
        "authentication[].backend",
        H("mqtt_clients_authenticate_against_the_built_in_database"),
    ),
    (
        "authentication[].enable",
        H("a_chain_of_disabled_authenticators_lets_everyone_in"),
    ),
    (
        "authentication[].user_id_type",
        H("clientid_user_ids_and_missing_passwords"),
    ),
    (
        "authentication[].password_hash_algorithm.*",
        H("sha256_with_a_suffix_salt_matches_the_reference_digest"),
    ),
    (
        "authentication[].bootstrap_file",
        H("bootstrap_reads_plain_csv_and_hashed_json"),
    ),
    (
        "authentication[].bootstrap_type",
        H("bootstrap_reads_plain_csv_and_hashed_json"),
    ),
    // -- authorization ---------------------------------------------------------------------
    (
        "authorization.sources",
        H("file_sources_in_order_then_no_match"),
    ),
    (
        "authorization.no_match",
        H("file_sources_in_order_then_no_match"),
    ),
    ("authorization.deny_action", U("disconnect")),
    ("authorization.cache.enable", U("false")),
    ("authorization.cache.max_size", U("64")),
    ("authorization.cache.ttl", U("5m")),
    ("authorization.cache.excludes", U("[\"a/#\"]")),
    // -- node, broker, log, dashboard, durability ----------------------------------------
    ("node.name", H("sys_version_and_uptime_are_published")),
    (
        "node.data_dir",
        H("junction_start_without_config_serves_mqtt_and_creates_data_dir"),
    ),
    (
        "node.worker_threads",
        H("kill_9_loses_no_acknowledged_message_on_one_worker_thread"),
    ),
    ("node.cookie", U("\"emqxsecretcookie\"")),
    ("broker.enable_session_registry", U("false")),
    ("log.console.enable", H("test_log_console_level_and_enable")),
    ("log.console.level", H("test_log_console_level_and_enable")),
    (
        "dashboard.listeners.http.enable",
        H("test_api_lists_and_kicks_clients_of_every_protocol"),
    ),
    (
        "dashboard.listeners.http.bind",
        H("test_api_lists_and_kicks_clients_of_every_protocol"),
    ),
    (
        "dashboard.listeners.http.max_connections",
        H("test_the_api_serves_at_most_max_connections_at_once"),
    ),
    (
        "dashboard.listeners.https.enable",
        H("test_the_api_is_served_over_https_with_the_configured_certificate"),
    ),
    (
        "dashboard.listeners.https.bind",
        H("test_the_api_is_served_over_https_with_the_configured_certificate"),
    ),
    (
        "dashboard.listeners.https.max_connections",
        H("test_https_api_connections_past_max_connections_wait"),
    ),
    (
        "dashboard.listeners.https.ssl_options.certfile",
        H("test_the_api_is_served_over_https_with_the_configured_certificate"),
    ),
    (
        "dashboard.listeners.https.ssl_options.keyfile",
        H("test_the_api_is_served_over_https_with_the_configured_certificate"),
    ),
    (
        "dashboard.listeners.https.ssl_options.cacertfile",
        H("test_the_https_api_can_require_client_certificates"),
    ),
    (
        "dashboard.listeners.https.ssl_options.verify",
        H("test_the_https_api_can_require_client_certificates"),
    ),
    (
        "dashboard.listeners.https.ssl_options.fail_if_no_peer_cert",
        H("test_the_https_api_can_require_client_certificates"),
    ),
    (
        "dashboard.listeners.https.ssl_options.versions",
        H("test_the_https_api_offers_only_the_configured_versions"),
    ),
    (
        "dashboard.listeners.https.ssl_options.ciphers",
        H("test_the_https_api_offers_only_the_configured_versions"),
    ),
    (
        "dashboard.listeners.https.ssl_options.handshake_timeout",
        H("test_a_silent_https_api_connection_is_closed_after_the_handshake_timeout"),
    ),
    ("dashboard.listeners.https.ssl_options.depth", U("3")),
    (
        "dashboard.listeners.https.ssl_options.password",
        U("\"secret\""),
    ),
    (
        "dashboard.default_username",
        H("test_no_password_works_until_the_generated_one_is_read"),
    ),
    (
        "dashboard.default_password",
        H("test_a_configured_default_password_logs_in_and_can_be_changed"),
    ),
    (
        "dashboard.token_expired_time",
        H("test_a_token_expires_after_token_expired_time"),
    ),
    (
        "api_key.bootstrap_file",
        H("test_api_lists_and_kicks_clients_of_every_protocol"),
    ),
    (
        "prometheus.enable_basic_auth",
        H("test_prometheus_basic_auth_can_be_required"),
    ),
    (
        "durable_sessions.commit_interval",
        H("retained_messages_are_committed_within_the_commit_interval"),
    ),
    (
        "durable_sessions.commit_before_ack",
        H("kill_9_loses_no_acknowledged_message_with_commit_before_ack"),
    ),
    // -- sys_topics ----------------------------------------------------------------------
    (
        "sys_topics.sys_msg_interval",
        H("sys_stats_and_metrics_are_published"),
    ),
    (
        "sys_topics.sys_heartbeat_interval",
        H("sys_version_and_uptime_are_published"),
    ),
    (
        "sys_topics.sys_event_messages.client_connected",
        H("sys_client_connected_and_disconnected_events"),
    ),
    (
        "sys_topics.sys_event_messages.client_disconnected",
        H("sys_client_connected_and_disconnected_events"),
    ),
    (
        "sys_topics.sys_event_messages.client_subscribed",
        H("sys_subscribed_and_unsubscribed_events_follow_sys_event_messages"),
    ),
    (
        "sys_topics.sys_event_messages.client_unsubscribed",
        H("sys_subscribed_and_unsubscribed_events_follow_sys_event_messages"),
    ),
    // -- mqtt ----------------------------------------------------------------------------
    (
        "mqtt.max_packet_size",
        H("packet_over_maximum_packet_size_is_disconnected_with_0x95"),
    ),
    (
        "mqtt.max_clientid_len",
        H("max_clientid_len_refuses_longer_client_ids"),
    ),
    (
        "mqtt.max_topic_levels",
        H("a_stomp_destination_deeper_than_max_topic_levels_gets_an_error"),
    ),
    (
        "mqtt.max_qos_allowed",
        H("granted_qos_is_capped_by_max_qos_allowed"),
    ),
    (
        "mqtt.max_topic_alias",
        H("topic_alias_above_maximum_is_disconnected_with_0x94"),
    ),
    (
        "mqtt.retain_available",
        H("retain_available_false_is_announced_and_a_retained_will_refused"),
    ),
    (
        "mqtt.wildcard_subscription",
        H("wildcard_subscription_false_refuses_wildcard_filters"),
    ),
    (
        "mqtt.shared_subscription",
        H("shared_subscription_false_refuses_share_filters"),
    ),
    ("mqtt.exclusive_subscription", U("true")),
    (
        "mqtt.ignore_loop_deliver",
        H("ignore_loop_deliver_withholds_a_clients_own_messages"),
    ),
    ("mqtt.strict_mode", U("false")),
    (
        "mqtt.idle_timeout",
        H("silent_connection_is_closed_after_idle_timeout"),
    ),
    (
        "mqtt.keepalive_multiplier",
        H("silent_client_is_disconnected_after_one_and_a_half_keepalives"),
    ),
    (
        "mqtt.server_keepalive",
        H("connack_advertises_server_limits_in_v5"),
    ),
    (
        "mqtt.max_subscriptions",
        H("max_subscriptions_answers_quota_exceeded_past_it"),
    ),
    (
        "mqtt.upgrade_qos",
        H("upgrade_qos_delivers_at_the_subscription_qos"),
    ),
    (
        "mqtt.max_inflight",
        H("more_unacknowledged_qos2_publishes_than_the_receive_maximum_get_disconnect_0x93"),
    ),
    (
        "mqtt.retry_interval",
        H("unacknowledged_qos1_is_resent_after_retry_interval_while_connected"),
    ),
    (
        "mqtt.max_awaiting_rel",
        H("max_awaiting_rel_refuses_qos2_past_it_with_0x93"),
    ),
    (
        "mqtt.await_rel_timeout",
        H("qos2_publish_without_pubrel_expires_after_await_rel_timeout"),
    ),
    (
        "mqtt.session_expiry_interval",
        H("persistent_session_receives_messages_published_while_offline_v311"),
    ),
    (
        "mqtt.max_mqueue_len",
        H("full_message_queue_drops_qos0_first_and_counts_dropped"),
    ),
    ("mqtt.mqueue_priorities", U("{\"alarm/#\" = 10}")),
    ("mqtt.mqueue_default_priority", U("highest")),
    (
        "mqtt.mqueue_store_qos0",
        H("mqueue_store_qos0_false_queues_no_qos0_for_an_offline_session"),
    ),
    (
        "mqtt.max_outbox_bytes",
        H("what_waits_for_a_slow_reader_is_bounded_in_bytes_as_well_as_in_messages"),
    ),
    (
        "mqtt.use_username_as_clientid",
        H("use_username_as_clientid_names_the_session_after_the_user"),
    ),
    ("mqtt.peer_cert_as_username", U("cn")),
    ("mqtt.peer_cert_as_clientid", U("dn")),
    (
        "mqtt.response_information",
        H("response_information_is_given_to_a_client_that_asks"),
    ),
    (
        "mqtt.shared_subscription_strategy",
        H("shared_strategy_random_delivers_each_message_once"),
    ),
    (
        "mqtt.message_expiry_interval",
        H("message_expiry_interval_caps_messages_that_set_none"),
    ),
    // -- MQTT listeners: what belongs to other listener types ----------------------------
    ("listeners.tcp.*.ssl_options.**", M("{}")),
    ("listeners.ws.*.ssl_options.**", M("{}")),
    ("listeners.tcp.*.websocket.**", M("{}")),
    ("listeners.ssl.*.websocket.**", M("{}")),
    // -- MQTT listeners ------------------------------------------------------------------
    ("listeners.*", H("file_listener_keys_merge_over_defaults")),
    (
        "listeners.*.*.bind",
        H("file_listener_keys_merge_over_defaults"),
    ),
    (
        "listeners.*.*.enable",
        H("disabled_listener_is_not_started"),
    ),
    (
        "listeners.*.*.enable_authn",
        H("enable_authn_false_skips_the_chain"),
    ),
    (
        "listeners.*.*.max_connections",
        H("max_connections_refuses_connections_over_the_limit"),
    ),
    (
        "listeners.*.*.max_conn_rate",
        H("max_conn_rate_delays_connections_beyond_the_rate"),
    ),
    (
        "listeners.*.*.access_rules",
        H("access_rules_first_match_wins_on_mqtt_and_gateway_listeners"),
    ),
    (
        "listeners.*.*.mountpoint",
        H("an_mqtt_listener_mountpoint_isolates_each_client_and_refuses_a_widening_id"),
    ),
    ("listeners.*.*.zone", U("\"other\"")),
    (
        "listeners.*.*.proxy_protocol",
        H("test_mqtt_listeners_report_the_address_in_the_proxy_header"),
    ),
    (
        "listeners.*.*.proxy_protocol_timeout",
        H("test_a_connection_without_a_proxy_header_is_refused"),
    ),
    (
        "listeners.*.*.tcp_options.backlog",
        H("tcp_options_backlog_sizes_the_listen_queue"),
    ),
    (
        "listeners.*.*.tcp_options.send_timeout",
        H("a_subscriber_that_never_reads_is_closed_after_send_timeout_while_others_receive"),
    ),
    (
        "listeners.*.*.tcp_options.nodelay",
        H("tcp_options_reach_the_listening_and_the_accepted_sockets"),
    ),
    (
        "listeners.*.*.tcp_options.recbuf",
        H("tcp_options_reach_the_listening_and_the_accepted_sockets"),
    ),
    (
        "listeners.*.*.tcp_options.sndbuf",
        H("tcp_options_reach_the_listening_and_the_accepted_sockets"),
    ),
    (
        "listeners.*.*.tcp_options.reuseaddr",
        H("tcp_options_reach_the_listening_and_the_accepted_sockets"),
    ),
    ("listeners.*.*.tcp_options.buffer", U("4KB")),
    ("listeners.*.*.ssl_options.certfile", H("test_ssl_listener")),
    (
        "listeners.*.*.ssl_options.keyfile",
        H("test_ssl_options_take_pem_text_as_well_as_paths"),
    ),
    (
        "listeners.*.*.ssl_options.cacertfile",
        H("test_verify_peer_accepts_ca_signed_client_cert"),
    ),
    (
        "listeners.*.*.ssl_options.verify",
        H("test_verify_peer_refuses_cert_from_unknown_ca"),
    ),
    (
        "listeners.*.*.ssl_options.fail_if_no_peer_cert",
        H("test_verify_peer_refuses_client_without_cert"),
    ),
    (
        "listeners.*.*.ssl_options.versions",
        H("test_ssl_versions_and_ciphers_are_what_the_listener_offers"),
    ),
    (
        "listeners.*.*.ssl_options.ciphers",
        H("test_ssl_versions_and_ciphers_are_what_the_listener_offers"),
    ),
    (
        "listeners.*.*.ssl_options.handshake_timeout",
        H("test_ssl_handshake_timeout_closes_a_client_that_never_says_hello"),
    ),
    ("listeners.*.*.ssl_options.depth", U("3")),
    ("listeners.*.*.ssl_options.password", U("\"secret\"")),
    (
        "listeners.*.*.websocket.mqtt_path",
        H("websocket_mqtt_path_and_supported_subprotocols_gate_the_upgrade"),
    ),
    (
        "listeners.*.*.websocket.supported_subprotocols",
        H("websocket_mqtt_path_and_supported_subprotocols_gate_the_upgrade"),
    ),
    (
        "listeners.*.*.websocket.fail_if_no_subprotocol",
        H("fail_if_no_subprotocol_false_upgrades_without_one"),
    ),
    (
        "listeners.*.*.websocket.check_origin_enable",
        H("a_websocket_upgrade_from_a_foreign_origin_gets_403"),
    ),
    (
        "listeners.*.*.websocket.check_origins",
        H("a_websocket_upgrade_from_a_foreign_origin_gets_403"),
    ),
    (
        "listeners.*.*.websocket.allow_origin_absence",
        H("a_websocket_upgrade_from_a_foreign_origin_gets_403"),
    ),
    (
        "listeners.*.*.websocket.max_frame_size",
        H("websocket_max_frame_size_closes_on_a_larger_frame_header"),
    ),
    (
        "listeners.*.*.websocket.idle_timeout",
        H("websocket_idle_timeout_bounds_the_upgrade"),
    ),
    (
        "listeners.*.*.websocket.proxy_address_header",
        H("proxy_address_and_port_headers_name_the_websocket_client"),
    ),
    (
        "listeners.*.*.websocket.proxy_port_header",
        H("proxy_address_and_port_headers_name_the_websocket_client"),
    ),
    ("listeners.*.*.websocket.compress", U("true")),
    ("listeners.*.*.websocket.mqtt_piggyback", U("single")),
    // -- TLS-PSK for DTLS listeners ---------------------------------------------------------
    (
        "psk_authentication.enable",
        H("an_mqttsn_client_over_dtls_with_psk_reaches_an_mqtt_subscriber"),
    ),
    (
        "psk_authentication.init_file",
        H("an_mqttsn_client_over_dtls_with_psk_reaches_an_mqtt_subscriber"),
    ),
    (
        "psk_authentication.separator",
        H("psk_lines_are_identity_separator_secret"),
    ),
    ("psk_authentication.chunk_size", U("10")),
    // -- a gateway EMQX has and Junction has not built yet (keys listed by the server) -----
    ("gateway.*", U("{}")),
    // -- gateway listeners: options of other types (each gateway lists the types it lacks) -
    ("gateway.*.listeners.tcp.*.ssl_options.**", M("{}")),
    ("gateway.*.listeners.tcp.*.udp_options.**", M("{}")),
    ("gateway.*.listeners.ssl.*.udp_options.**", M("{}")),
    (
        "gateway.*.listeners.tcp.*.health_check.**",
        M("{request = a, reply = b}"),
    ),
    (
        "gateway.*.listeners.ssl.*.health_check.**",
        M("{request = a, reply = b}"),
    ),
    ("gateway.*.listeners.tcp.*.dtls_options.**", M("{}")),
    ("gateway.*.listeners.ssl.*.dtls_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.dtls_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.tcp_options.**", M("{}")),
    ("gateway.*.listeners.dtls.*.tcp_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.ssl_options.**", M("{}")),
    ("gateway.*.listeners.dtls.*.ssl_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.proxy_protocol", U("true")),
    ("gateway.*.listeners.dtls.*.proxy_protocol", U("true")),
    ("gateway.*.listeners.udp.*.proxy_protocol_timeout", U("5s")),
    ("gateway.*.listeners.dtls.*.proxy_protocol_timeout", U("5s")),
    ("gateway.*.listeners.udp.*.acceptors", U("4")),
    ("gateway.*.listeners.dtls.*.acceptors", U("4")),
    // -- DTLS listeners (the datagram driver's limits apply as on udp ones) -------------
    (
        "gateway.*.listeners.dtls.*.max_connections",
        H("a_handshake_left_unfinished_frees_its_place_after_handshake_timeout"),
    ),
    (
        "gateway.*.listeners.dtls.*.max_conn_rate",
        H("mqttsn_udp_buffer_and_max_conn_rate_are_kept"),
    ),
    (
        "gateway.*.listeners.dtls.*.health_check.*",
        H("an_mqttsn_listener_keeps_to_max_connections_and_answers_its_health_check"),
    ),
    ("gateway.*.listeners.dtls.*.udp_options.active_n", U("5")),
    (
        "gateway.*.listeners.dtls.*.udp_options.buffer",
        H("mqttsn_udp_buffer_and_max_conn_rate_are_kept"),
    ),
    (
        "gateway.*.listeners.dtls.*.udp_options.*",
        H("udp_options_reach_the_socket"),
    ),
    ("gateway.*.listeners.dtls.*.dtls_options.depth", U("3")),
    (
        "gateway.*.listeners.dtls.*.dtls_options.password",
        U("\"secret\""),
    ),
    (
        "gateway.*.listeners.dtls.*.dtls_options.versions",
        U("[\"dtlsv1\"]"),
    ),
    (
        "gateway.*.listeners.dtls.*.dtls_options.handshake_timeout",
        H("a_handshake_left_unfinished_frees_its_place_after_handshake_timeout"),
    ),
    (
        "gateway.*.listeners.dtls.*.dtls_options.*",
        H("a_dtls_listener_with_a_certificate_verifies_client_certificates"),
    ),
    // -- gateway listeners -------------------------------------------------------------
    (
        "gateway.*.listeners.*",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.*.listeners.*.*.bind",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.*.listeners.*.*.enable",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.*.listeners.*.*.enable_authn",
        H("enable_authn_false_skips_the_chain"),
    ),
    (
        "gateway.*.listeners.*.*.authentication.**",
        H("stomp_gateway_and_listener_chains_come_from_the_config"),
    ),
    (
        "gateway.*.listeners.*.*.mountpoint",
        H("listener_mountpoint_overrides_the_gateway_one_and_renders_placeholders"),
    ),
    (
        "gateway.*.listeners.*.*.access_rules",
        H("access_rules_first_match_wins_on_mqtt_and_gateway_listeners"),
    ),
    (
        "gateway.*.listeners.udp.*.max_connections",
        H("an_mqttsn_listener_keeps_to_max_connections_and_answers_its_health_check"),
    ),
    (
        "gateway.*.listeners.udp.*.max_conn_rate",
        H("mqttsn_udp_buffer_and_max_conn_rate_are_kept"),
    ),
    (
        "gateway.*.listeners.udp.*.health_check.*",
        H("an_mqttsn_listener_keeps_to_max_connections_and_answers_its_health_check"),
    ),
    ("gateway.*.listeners.udp.*.udp_options.active_n", U("5")),
    (
        "gateway.*.listeners.udp.*.udp_options.buffer",
        H("mqttsn_udp_buffer_and_max_conn_rate_are_kept"),
    ),
    (
        "gateway.*.listeners.udp.*.udp_options.*",
        H("udp_options_reach_the_socket"),
    ),
    (
        "gateway.*.listeners.*.*.max_connections",
        H("max_connections_refuses_connections_over_the_limit"),
    ),
    (
        "gateway.*.listeners.*.*.max_conn_rate",
        H("max_conn_rate_delays_connections_beyond_the_rate"),
    ),
    (
        "gateway.*.listeners.*.*.acceptors",
        H("acceptors_accept_loops_share_one_socket_and_serve_every_connection"),
    ),
    (
        "gateway.*.listeners.*.*.proxy_protocol",
        H("test_stomp_listeners_report_the_address_in_the_proxy_header"),
    ),
    (
        "gateway.*.listeners.*.*.proxy_protocol_timeout",
        H("test_stomp_listeners_report_the_address_in_the_proxy_header"),
    ),
    ("gateway.*.listeners.*.*.tcp_options.buffer", U("4KB")),
    (
        "gateway.*.listeners.*.*.tcp_options.send_timeout",
        H("a_subscriber_that_never_reads_is_closed_after_send_timeout_while_others_receive"),
    ),
    (
        "gateway.*.listeners.*.*.tcp_options.backlog",
        H("tcp_options_backlog_sizes_the_listen_queue"),
    ),
    (
        "gateway.*.listeners.*.*.tcp_options.*",
        H("tcp_options_reach_the_listening_and_the_accepted_sockets"),
    ),
    ("gateway.*.listeners.*.*.ssl_options.depth", U("3")),
    (
        "gateway.*.listeners.*.*.ssl_options.password",
        U("\"secret\""),
    ),
    (
        "gateway.*.listeners.*.*.ssl_options.*",
        H("test_stomp_py_over_tls_logs_in_and_exchanges_messages"),
    ),
];

/// A status table: key patterns and what happens to the keys they match, first match wins.
pub type KeyTable = &'static [(&'static str, KeyStatus)];

/// The generated key list (`docs/CONFIG-KEYS.md`): every key in `keys` with its status in
/// `tables` (the server passes this crate's [`KEY_STATUS`] and every gateway's table).
pub fn key_list_markdown(keys: &[String], tables: &[KeyTable]) -> String {
    let mut out = String::from(
        "# Configuration keys\n\n\
         Generated from the config types (`junction_config::accepted_keys` and each \
         gateway's section type) and the status tables (`junction_config::KEY_STATUS` and \
         each gateway crate's `KEY_STATUS`) by the test `the_generated_key_list_is_current`; \
         run it with `UPDATE_CONFIG_KEYS=1` to rewrite this file. `<name>` is any map key \
         (a listener name), `[]` an element of a list.\n\n\
         - **honoured**: does what EMQX documents; the test named shows it.\n\
         - **refused unless default**: accepted at its default value; any other value stops \
         the start with the key's path and \"not supported yet\".\n\
         - **refused here**: not valid for this listener type or gateway; the loader refuses \
         it, naming the key or its section.\n\n\
         | key | status | shown by |\n|---|---|---|\n",
    );
    for key in keys {
        let (status, by) = match key_status_in(tables, key) {
            Some(KeyStatus::Honoured(test)) => ("honoured", format!("`{test}`")),
            Some(KeyStatus::Unsupported(_)) => (
                "refused unless default",
                "`every_refused_key_is_refused_by_name`".into(),
            ),
            Some(KeyStatus::Misplaced(_)) => (
                "refused here",
                "`every_refused_key_is_refused_by_name`".into(),
            ),
            None => ("**no status**", String::new()),
        };
        out.push_str(&format!("| `{key}` | {status} | {by} |\n"));
    }
    out
}

/// Whether `key` matches `pattern` (`*` is one segment, a final `**` any rest).
pub fn key_matches(pattern: &str, key: &str) -> bool {
    let mut p = pattern.split('.');
    let mut k = key.split('.');
    loop {
        match (p.next(), k.next()) {
            (Some("**"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The status of `key` in the first of `tables` that has one.
pub fn key_status_in(tables: &[KeyTable], key: &str) -> Option<KeyStatus> {
    tables.iter().find_map(|table| {
        table
            .iter()
            .find(|(pattern, _)| key_matches(pattern, key))
            .map(|(_, status)| *status)
    })
}

/// The status of `key` (a path as [`crate::accepted_keys`] writes it) in [`KEY_STATUS`].
pub fn key_status(key: &str) -> Option<KeyStatus> {
    key_status_in(&[KEY_STATUS], key)
}

/// Checks that hold the status tables to the keys, shared by this crate's tests (keys
/// outside `gateway`) and the server's (every key, gateways included).
pub mod audit {
    use super::{key_matches, key_status_in, KeyStatus, KeyTable};
    use std::path::Path;

    /// Keys no table gives a status.
    pub fn keys_without_status(keys: &[String], tables: &[KeyTable]) -> Vec<String> {
        keys.iter()
            .filter(|k| key_status_in(tables, k).is_none())
            .cloned()
            .collect()
    }

    /// Patterns that match none of `keys`.
    pub fn patterns_without_key(keys: &[String], tables: &[KeyTable]) -> Vec<&'static str> {
        tables
            .iter()
            .flat_map(|t| t.iter().map(|(p, _)| *p))
            .filter(|p| !keys.iter().any(|k| key_matches(p, k)))
            .collect()
    }

    /// Every source file under `dir`, Rust and Python, appended to `out`.
    fn sources(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | ".venv" | "node_modules") {
                    sources(&path, out);
                }
            } else if name.ends_with(".rs") || name.ends_with(".py") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }

    /// Honoured statuses whose test (a Rust `fn` or Python `def`) is nowhere under `root`.
    pub fn honoured_tests_missing(tables: &[KeyTable], root: &Path) -> Vec<String> {
        let mut text = String::new();
        sources(root, &mut text);
        let mut missing = Vec::new();
        for (pattern, status) in tables.iter().flat_map(|t| t.iter()) {
            if let KeyStatus::Honoured(test) = status {
                let rust = format!("fn {test}(");
                let python = format!("def {test}(");
                if !text.contains(&rust) && !text.contains(&python) {
                    missing.push(format!("{pattern}: no test named {test}"));
                }
            }
        }
        missing
    }

    /// A config text that sets `key` to `value`, with what its section needs to load
    /// otherwise (a listener of its own on its own address, a certificate if it is TLS).
    pub fn sample_setting(key: &str, value: &str) -> String {
        let key = key.replace("<name>", "k").replace("[]", "");
        let segments: Vec<&str> = key.split('.').collect();
        let mut context = String::new();
        let listener = match segments.as_slice() {
            ["listeners", kind, name, ..] => Some((format!("listeners.{kind}.{name}"), *kind)),
            ["gateway", gw, "listeners", kind, name, ..] => {
                Some((format!("gateway.{gw}.listeners.{kind}.{name}"), *kind))
            }
            _ => None,
        };
        if let Some((section, kind)) = listener {
            context.push_str(&format!("{section}.bind = \"127.0.0.1:29999\"\n"));
            if matches!(kind, "ssl" | "wss") && !key.contains(".ssl_options.certfile") {
                context.push_str(&format!(
                    "{section}.ssl_options {{ certfile = c.pem, keyfile = k.pem }}\n"
                ));
            }
        }
        if key.starts_with("authentication") {
            // A list element is written whole.
            let field = key
                .trim_start_matches("authentication")
                .trim_start_matches('.');
            return format!(
                "authentication = [{{ mechanism = password_based, backend = built_in_database, {field} = {value} }}]"
            );
        }
        format!("{context}{key} = {value}\n")
    }

    /// The keys among `keys` whose status is a refusal, with the value that must be
    /// refused and whether the refusal must say "not supported yet" at the key itself.
    pub fn refusals(keys: &[String], tables: &[KeyTable]) -> Vec<(String, &'static str, bool)> {
        keys.iter()
            .filter_map(|key| match key_status_in(tables, key) {
                Some(KeyStatus::Unsupported(v)) => Some((key.clone(), v, true)),
                Some(KeyStatus::Misplaced(v)) => Some((key.clone(), v, false)),
                _ => None,
            })
            .collect()
    }

    /// Check that loading `text` (from [`sample_setting`] for `key`) was refused at the key
    /// or its section, with "not supported yet" at the key for an unsupported one.
    pub fn check_refusal(
        key: &str,
        unsupported: bool,
        text: &str,
        result: Result<(), crate::ConfigError>,
    ) -> Result<(), String> {
        let written = key.replace("<name>", "k").replace("[]", "");
        match result {
            Err(crate::ConfigError::Invalid { key_path, message }) => {
                if !written.starts_with(&key_path) {
                    return Err(format!(
                        "{key}: refused at {key_path} ({message}), not at the key or its section\n{text}"
                    ));
                }
                if unsupported && (key_path != written || !message.contains("not supported yet")) {
                    return Err(format!("{key}: refused at {key_path} with {message}"));
                }
                Ok(())
            }
            other => Err(format!("{key} was not refused: {other:?}\n{text}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::audit::*;
    use super::*;
    use crate::{accepted_keys, Config};
    use std::path::Path;

    #[test]
    fn patterns_match_by_segment() {
        assert!(key_matches(
            "listeners.*.*.bind",
            "listeners.tcp.<name>.bind"
        ));
        assert!(!key_matches(
            "listeners.*.*.bind",
            "listeners.tcp.<name>.bind.x"
        ));
        assert!(key_matches(
            "gateway.stomp.listeners.udp.**",
            "gateway.stomp.listeners.udp.<name>.bind"
        ));
        assert!(!key_matches(
            "gateway.stomp.listeners.udp.**",
            "gateway.stomp.listeners.udp"
        ));
    }

    /// The keys outside `gateway` (the server checks the gateway ones with the gateways').
    #[test]
    fn every_accepted_key_has_a_status_and_every_status_a_key() {
        let keys = accepted_keys();
        let missing = keys_without_status(&keys, &[KEY_STATUS]);
        assert!(missing.is_empty(), "keys with no status: {missing:#?}");
        let unused: Vec<&str> = patterns_without_key(&keys, &[KEY_STATUS])
            .into_iter()
            .filter(|p| !p.starts_with("gateway."))
            .collect();
        assert!(unused.is_empty(), "statuses that match no key: {unused:#?}");
    }

    #[test]
    fn every_honoured_key_names_a_test_that_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let missing = honoured_tests_missing(&[KEY_STATUS], &root);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn every_refused_key_is_refused_by_name() {
        for (key, value, unsupported) in refusals(&accepted_keys(), &[KEY_STATUS]) {
            let text = sample_setting(&key, value);
            let result = Config::from_str_with_env(&text, Vec::<(String, String)>::new());
            if let Err(e) = check_refusal(&key, unsupported, &text, result.map(|_| ())) {
                panic!("{e}");
            }
        }
    }
}
