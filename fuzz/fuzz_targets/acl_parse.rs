//! An `acl.conf` (an administrator's file, or text sent through the API): any octets are
//! parsed into rules or refused with a line; rules that compile are checked against a
//! client. Nothing may panic or recurse past the parser's nesting bound. Run with
//! `cargo fuzz run acl_parse`.
#![no_main]

use junction_auth::acl::AclRules;
use junction_broker::hooks::Action;
use junction_types::{ClientInfo, QoS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(rules) = AclRules::parse(&text) else {
        return;
    };
    let mut client = ClientInfo::restored("c1".into());
    client.username = Some("dev-1".into());
    for (action, topic) in [
        (Action::Subscribe { qos: QoS::AtLeastOnce }, "$SYS/#"),
        (Action::Subscribe { qos: QoS::AtMostOnce }, "a/+/#"),
        (
            Action::Publish {
                qos: QoS::ExactlyOnce,
                retain: true,
            },
            "d/dev-1/c1",
        ),
    ] {
        let _ = rules.check(&client, action, topic);
    }
});
