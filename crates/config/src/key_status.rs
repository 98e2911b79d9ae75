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
    // -- authorization (sources come later) ----------------------------------------------
    (
        "authorization.sources",
        U("[{type = file, path = \"acl.conf\"}]"),
    ),
    ("authorization.no_match", U("deny")),
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
    ("dashboard.listeners.http.enable", U("true")),
    ("dashboard.listeners.http.bind", U("18084")),
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
    // -- gateways not built yet ----------------------------------------------------------
    ("gateway.coap", U("{}")),
    ("gateway.lwm2m", U("{}")),
    ("gateway.exproto", U("{}")),
    ("gateway.jt808", U("{}")),
    ("gateway.gbt32960", U("{}")),
    ("gateway.ocpp", U("{}")),
    ("gateway.nats", U("{}")),
    // -- gateway listeners: types a gateway does not have, options of other types ---------
    ("gateway.stomp.listeners.udp.**", M("{}")),
    ("gateway.stomp.listeners.dtls.**", M("{}")),
    ("gateway.mqttsn.listeners.tcp.**", M("{}")),
    ("gateway.mqttsn.listeners.ssl.**", M("{}")),
    ("gateway.mqttsn.listeners.dtls.**", M("{}")),
    ("gateway.*.listeners.tcp.*.ssl_options.**", M("{}")),
    ("gateway.*.listeners.*.*.udp_options.**", M("{}")),
    (
        "gateway.*.listeners.tcp.*.health_check.**",
        M("{request = a, reply = b}"),
    ),
    (
        "gateway.*.listeners.ssl.*.health_check.**",
        M("{request = a, reply = b}"),
    ),
    ("gateway.*.listeners.tcp.*.dtls_options", M("{}")),
    ("gateway.*.listeners.ssl.*.dtls_options", M("{}")),
    ("gateway.*.listeners.udp.*.dtls_options", M("{}")),
    ("gateway.*.listeners.udp.*.tcp_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.ssl_options.**", M("{}")),
    ("gateway.*.listeners.udp.*.proxy_protocol", U("true")),
    ("gateway.*.listeners.udp.*.proxy_protocol_timeout", U("5s")),
    ("gateway.*.listeners.udp.*.acceptors", U("4")),
    // -- STOMP ---------------------------------------------------------------------------
    (
        "gateway.stomp.enable",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.stomp.enable_stats",
        H("enable_stats_false_shows_the_counters_as_they_were_at_connect"),
    ),
    (
        "gateway.stomp.idle_timeout",
        H("frames_before_connect_close_the_connection_without_error"),
    ),
    (
        "gateway.stomp.mountpoint",
        H("stomp_send_reaches_mqtt_subscriber_under_the_mountpoint"),
    ),
    (
        "gateway.stomp.clientinfo_override.*",
        H("test_clientinfo_override_sets_client_id_and_username"),
    ),
    (
        "gateway.stomp.frame.max_headers",
        H("too_many_headers_is_a_frame_error"),
    ),
    (
        "gateway.stomp.frame.max_headers_length",
        H("a_header_over_max_headers_length_is_a_frame_error"),
    ),
    (
        "gateway.stomp.frame.max_body_length",
        H("a_body_over_max_body_length_is_a_frame_error_with_or_without_content_length"),
    ),
    (
        "gateway.stomp.transaction.*",
        H("a_stomp_transaction_over_its_limits_gets_an_error_and_an_idle_one_expires"),
    ),
    (
        "gateway.stomp.max_subscriptions",
        H("a_stomp_transaction_over_its_limits_gets_an_error_and_an_idle_one_expires"),
    ),
    (
        "gateway.stomp.authentication.**",
        H("stomp_gateway_and_listener_chains_come_from_the_config"),
    ),
    // -- MQTT-SN -------------------------------------------------------------------------
    (
        "gateway.mqttsn.enable",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.mqttsn.enable_stats",
        H("enable_stats_false_shows_the_counters_as_they_were_at_connect"),
    ),
    (
        "gateway.mqttsn.idle_timeout",
        H("a_silent_connection_is_closed_after_idle_timeout"),
    ),
    (
        "gateway.mqttsn.mountpoint",
        H("an_mqttsn_client_id_that_would_widen_the_mountpoint_is_refused"),
    ),
    (
        "gateway.mqttsn.clientinfo_override.*",
        H("pingreq_from_a_new_address_finds_the_overridden_client"),
    ),
    (
        "gateway.mqttsn.gateway_id",
        H("searchgw_is_answered_with_gwinfo"),
    ),
    (
        "gateway.mqttsn.broadcast",
        H("broadcast_sends_advertise_at_start_and_every_period_from_the_listener"),
    ),
    (
        "gateway.mqttsn.enable_qos3",
        H("test_qos_minus_one_publish_without_connect_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.subs_resume",
        H("persistent_session_resumes_with_registration_of_queued_topics"),
    ),
    (
        "gateway.mqttsn.predefined",
        H("test_publish_on_predefined_id_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.predefined[].*",
        H("test_publish_on_predefined_id_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.authentication.**",
        H("a_refused_authentication_is_connack_0x80_and_nothing_is_registered"),
    ),
    // -- gateway listeners (tcp and ssl for STOMP, udp for MQTT-SN) ----------------------
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

/// The generated key list (`docs/CONFIG-KEYS.md`): every accepted key with its status.
pub fn key_list_markdown() -> String {
    let mut out = String::from(
        "# Configuration keys\n\n\
         Generated from the config types (`junction_config::accepted_keys`) and the status \
         table (`junction_config::KEY_STATUS`) by the test \
         `the_generated_key_list_is_current`; run it with `UPDATE_CONFIG_KEYS=1` to rewrite \
         this file. `<name>` is any map key (a listener name), `[]` an element of a list.\n\n\
         - **honoured**: does what EMQX documents; the test named shows it.\n\
         - **refused unless default**: accepted at its default value; any other value stops \
         the start with the key's path and \"not supported yet\".\n\
         - **refused here**: not valid for this listener type or gateway; the loader refuses \
         it, naming the key or its section.\n\n\
         | key | status | shown by |\n|---|---|---|\n",
    );
    for key in crate::accepted_keys() {
        let (status, by) = match key_status(&key) {
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

/// Whether `key` matches `pattern`.
fn matches(pattern: &str, key: &str) -> bool {
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

/// The status of `key` (a path as [`crate::accepted_keys`] writes it).
pub fn key_status(key: &str) -> Option<KeyStatus> {
    KEY_STATUS
        .iter()
        .find(|(pattern, _)| matches(pattern, key))
        .map(|(_, status)| *status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{accepted_keys, Config, ConfigError};
    use std::path::Path;

    #[test]
    fn patterns_match_by_segment() {
        assert!(matches("listeners.*.*.bind", "listeners.tcp.<name>.bind"));
        assert!(!matches(
            "listeners.*.*.bind",
            "listeners.tcp.<name>.bind.x"
        ));
        assert!(matches(
            "gateway.stomp.listeners.udp.**",
            "gateway.stomp.listeners.udp.<name>.bind"
        ));
        assert!(!matches(
            "gateway.stomp.listeners.udp.**",
            "gateway.stomp.listeners.udp"
        ));
    }

    #[test]
    fn every_accepted_key_has_a_status_and_every_status_a_key() {
        let keys = accepted_keys();
        let missing: Vec<&String> = keys.iter().filter(|k| key_status(k).is_none()).collect();
        assert!(missing.is_empty(), "keys with no status: {missing:#?}");
        let unused: Vec<&str> = KEY_STATUS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !keys.iter().any(|k| matches(p, k)))
            .collect();
        assert!(unused.is_empty(), "statuses that match no key: {unused:#?}");
    }

    /// Every source file of the repository, Rust and Python.
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

    #[test]
    fn every_honoured_key_names_a_test_that_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut text = String::new();
        sources(&root, &mut text);
        for (pattern, status) in KEY_STATUS {
            if let KeyStatus::Honoured(test) = status {
                let rust = format!("fn {test}(");
                let python = format!("def {test}(");
                assert!(
                    text.contains(&rust) || text.contains(&python),
                    "{pattern}: no test named {test}"
                );
            }
        }
    }

    #[test]
    fn the_generated_key_list_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG-KEYS.md");
        let want = key_list_markdown();
        if std::env::var_os("UPDATE_CONFIG_KEYS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/CONFIG-KEYS.md is out of date: run UPDATE_CONFIG_KEYS=1 cargo test -p junction-config the_generated_key_list_is_current"
        );
    }

    /// A config that sets `key` to `value`, with what its section needs to load otherwise.
    fn config_setting(key: &str, value: &str) -> String {
        let key = key.replace("<name>", "k").replace("[]", "");
        let segments: Vec<&str> = key.split('.').collect();
        let mut context = String::new();
        // A listener of its own, on its own address, with a certificate if it is TLS.
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

    #[test]
    fn every_refused_key_is_refused_by_name() {
        for key in accepted_keys() {
            let (value, unsupported) = match key_status(&key) {
                Some(KeyStatus::Unsupported(v)) => (v, true),
                Some(KeyStatus::Misplaced(v)) => (v, false),
                _ => continue,
            };
            let text = config_setting(&key, value);
            let written = key.replace("<name>", "k").replace("[]", "");
            match Config::from_str_with_env(&text, Vec::<(String, String)>::new()) {
                Err(ConfigError::Invalid { key_path, message }) => {
                    assert!(
                        written.starts_with(&key_path),
                        "{key}: refused at {key_path} ({message}), not at the key or its section\n{text}"
                    );
                    if unsupported {
                        assert_eq!(key_path, written, "{key}: {message}");
                        assert!(message.contains("not supported yet"), "{key}: {message}");
                    }
                }
                other => panic!("{key} = {value} was not refused: {other:?}\n{text}"),
            }
        }
    }
}
