//! The cost of one audit lookup ([`IpIntel::facts`]) with the `[audit]` files of a config:
//! the time per call over many public addresses, as `benches/run.py`'s audit section reports
//! it beside the update path's CPU per request.
//!
//! Usage: lookups --config FILE [--calls N]

use std::hint::black_box;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use certadns_ddns::config::Config;
use certadns_ddns::intel::IpIntel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let config = Config::load(&PathBuf::from(value("--config").expect("--config FILE")))
        .expect("a valid config");
    let calls: u32 = value("--calls").map_or(2_000_000, |calls| calls.parse().expect("a count"));
    let (intel, _) = IpIntel::load(&config.audit).expect("the [audit] files load");
    // Spread over the IPv4 space (one in eight IPv6), as clients and addresses are; the same
    // sequence for every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let addresses: Vec<IpAddr> = (0..65_536)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 8 == 0 {
                IpAddr::V6(Ipv6Addr::from(
                    (0x2a00_u128 << 112) | u128::from(state) << 32,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(state as u32))
            }
        })
        .collect();
    let mut found = 0_usize;
    let started = Instant::now();
    for call in 0..calls {
        let facts = intel.facts(addresses[call as usize % addresses.len()]);
        found += usize::from(facts.country.is_some()) + facts.tags.len();
        black_box(&facts);
    }
    let elapsed = started.elapsed();
    writeln!(
        std::io::stdout(),
        "{:.0} ns per lookup ({calls} lookups, {found} countries and tags found)",
        elapsed.as_nanos() as f64 / f64::from(calls)
    )
    .expect("stdout");
}
