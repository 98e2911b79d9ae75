//! The gateways `junction start` runs. Adding a protocol is a crate that implements
//! [`junction_gateway::Gateway`] and one line here.

use junction_gateway::Registry;

/// Every gateway Junction ships, in the order they start.
pub fn registry() -> Registry {
    Registry::new()
        .with::<junction_gw_stomp::Stomp>()
        .with::<junction_gw_mqttsn::MqttSn>()
        .with::<junction_gw_coap::Coap>()
        .with::<junction_gw_lwm2m::Lwm2m>()
}

#[cfg(test)]
mod tests {
    //! The key list of the whole server: every key the loader and the gateways accept has
    //! a status, each refusal happens by name, and `docs/CONFIG-KEYS.md` is current.

    use super::registry;
    use junction_config::audit::*;
    use junction_config::{key_list_markdown, Config, ConfigError};
    use std::path::Path;

    fn load(text: &str) -> Result<(), ConfigError> {
        let config = Config::from_str_with_env(text, Vec::<(String, String)>::new())?;
        registry().check(&config)
    }

    #[test]
    fn every_accepted_key_has_a_status_and_every_status_a_key() {
        let r = registry();
        let keys = r.accepted_keys();
        let tables = r.key_tables();
        let missing = keys_without_status(&keys, &tables);
        assert!(missing.is_empty(), "keys with no status: {missing:#?}");
        let unused = patterns_without_key(&keys, &tables);
        assert!(unused.is_empty(), "statuses that match no key: {unused:#?}");
    }

    #[test]
    fn every_honoured_gateway_key_names_a_test_that_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let missing = honoured_tests_missing(&registry().key_tables(), &root);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn every_refused_key_is_refused_by_name() {
        let r = registry();
        for (key, value, unsupported) in refusals(&r.accepted_keys(), &r.key_tables()) {
            let text = sample_setting(&key, value);
            if let Err(e) = check_refusal(&key, unsupported, &text, load(&text)) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn a_gateway_section_no_gateway_owns_is_refused_by_name() {
        match load("gateway.jt808 { mountpoint = \"jt808/\" }") {
            Err(ConfigError::Invalid { key_path, message }) => {
                assert_eq!(key_path, "gateway.jt808");
                assert!(message.contains("not supported yet"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match load("gateway.carrier_pigeon {}") {
            Err(ConfigError::Invalid { key_path, message }) => {
                assert_eq!(key_path, "gateway.carrier_pigeon");
                assert!(
                    message.contains("unknown gateway (known: stomp, mqttsn, coap, lwm2m)"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn listeners_of_mqtt_and_every_gateway_may_not_share_an_address_of_one_transport() {
        // MQTT-SN's UDP 1884 beside an MQTT TCP listener on 1884: different transports.
        assert!(load("listeners.tcp.alt.bind = 1884").is_ok());
        match load("gateway.stomp.listeners.tcp.default.bind = 1883") {
            Err(ConfigError::Invalid { key_path, message }) => {
                assert_eq!(key_path, "gateway.stomp.listeners.tcp.default.bind");
                assert!(message.contains("listeners.tcp.default"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match load("gateway.stomp.listeners.udp.x.bind = 1") {
            Err(ConfigError::Invalid { key_path, .. }) => {
                assert_eq!(key_path, "gateway.stomp.listeners.udp.x")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_section_with_every_default_written_out_reads_back_as_itself() {
        // What the API reports of a gateway can be sent back, and listeners written out
        // when one of them changes keep their settings.
        let r = registry();
        let mut config = Config::from_str_with_env("", Vec::<(String, String)>::new()).unwrap();
        for name in r.names().collect::<Vec<_>>() {
            let filled = r.filled(name, &config.gateway).unwrap().unwrap();
            config.gateway.set_section(name, Some(&filled)).unwrap();
            r.check(&config).unwrap();
            assert_eq!(r.filled(name, &config.gateway).unwrap().unwrap(), filled);
        }
    }

    #[test]
    fn the_generated_key_list_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG-KEYS.md");
        let r = registry();
        let want = key_list_markdown(&r.accepted_keys(), &r.key_tables());
        if std::env::var_os("UPDATE_CONFIG_KEYS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/CONFIG-KEYS.md is out of date: run UPDATE_CONFIG_KEYS=1 cargo test -p junction the_generated_key_list_is_current"
        );
    }
}
