//! An update request as a router or an attacker may send it: the credentials header (Bearer,
//! Basic with any bytes), query string, form body, User-Agent and X-Forwarded-For lines, through
//! the parsing, the address plan, the host names and the client-address walk.
//!
//! Input: fields separated by NUL bytes: flags (first byte: bit 0 the `/domains/update`
//! endpoint, bit 1 an untrusted peer), `Authorization`, query, body, `User-Agent`, then any
//! number of `X-Forwarded-For` lines (`fuzz/seed.py` writes seeds in this form).
#![no_main]

use std::net::{IpAddr, SocketAddr};

use certadns_ddns::http::client::detect_client;
use certadns_ddns::dyndns::request::{Endpoint, MAX_HOSTNAMES, parse_update_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flags, mut fields) = certadns_ddns_fuzz::fields(data);
    let authorization = fields.next().filter(|field| !field.is_empty());
    let query = fields
        .next()
        .and_then(|field| std::str::from_utf8(field).ok());
    let body = fields.next().filter(|field| !field.is_empty());
    let user_agent = fields
        .next()
        .and_then(|field| std::str::from_utf8(field).ok());
    let forwarded_for: Vec<&[u8]> = fields.collect();

    let endpoint = if flags & 1 == 1 {
        Endpoint::Basic
    } else {
        Endpoint::Nic
    };
    let request = parse_update_request(endpoint, authorization, query, body, user_agent);
    let parsed = request.parse();
    if let Ok(plan) = &parsed.addresses {
        let set = plan.to_set();
        assert!(set.len() <= 2, "at most one address per family: {set:?}");
    }
    if let Ok(hosts) = &parsed.hosts {
        assert!((1..=MAX_HOSTNAMES).contains(&hosts.len()));
        for name in hosts.iter().flatten() {
            assert!(name.as_str().len() <= 253, "DNS's length limit");
            assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
        }
    }
    let peer: IpAddr = if flags & 2 == 2 {
        [203, 0, 113, 7].into()
    } else {
        [127, 0, 0, 1].into()
    };
    let trusted = [
        "127.0.0.0/8".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
    ];
    let client = detect_client(SocketAddr::new(peer, 443), forwarded_for, &trusted);
    if flags & 2 == 2 {
        assert_eq!(client.source, peer, "only a trusted peer is believed");
    }
});
