//! An UPDATE message as it arrives from anyone with a key (the RFC 2136 listener's reading
//! after the TSIG check): the zone, the prerequisites and the changes, read for an account's
//! key and for a subtree key, without panicking; whatever is taken stays in the zone, and an
//! account's changes stay within what an account may change.
#![no_main]

use certadns_ddns::model::rdata::StaticType;
use certadns_ddns::model::tsig::TsigScope;
use certadns_ddns::rfc2136::message::{changes, prerequisites, zone_of};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    let Ok(zone) = zone_of(&message) else {
        return;
    };
    if let Ok(found) = prerequisites(&message, &zone) {
        for prerequisite in found {
            let name = prerequisite.name();
            assert!(name == zone || name.ends_with(&format!(".{zone}")), "{name} in {zone}");
        }
    }
    let account = TsigScope::Account { user_id: 1 };
    if let Ok(taken) = changes(&message, &zone, 7, &account) {
        assert!(taken.statics.is_empty(), "an account key changes no static record");
    }
    let subtree = TsigScope::Zone {
        zone_id: 7,
        subtree: Some(format!("lab.{zone}")),
        types: vec![StaticType::A, StaticType::Txt, StaticType::Dhcid],
    };
    if let Ok(taken) = changes(&message, &zone, 7, &subtree) {
        assert!(taken.hosts.is_empty() && taken.challenges.is_empty());
    }
});
