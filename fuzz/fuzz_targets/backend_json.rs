//! A request body of pdns's `post_json` HTTP connector (the same JSON object as a line of the
//! unix and pipe connectors), decoded and answered from a real store.
#![no_main]

use certadns_ddns::backend::protocol::Query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = Query::from_json(data) {
        let json = certadns_ddns_fuzz::backend().handle(&query).to_json();
        assert!(json.starts_with(b"{") && json.ends_with(b"}") && !json.contains(&b'\n'));
    }
});
