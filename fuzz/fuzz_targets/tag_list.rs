//! An `[audit.ip-tags]` list as downloaded from anywhere (Tor's exit list, FireHOL netsets,
//! Spamhaus DROP): parsed without panicking, and when it parses, every address and network on
//! its lines is in it, and probe addresses are in it exactly when a plain scan of those
//! networks says so (the merged ranges and their binary search change nothing).
#![no_main]

use std::net::IpAddr;

use certadns_ddns::intel::CidrList;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = CidrList::parse(data) else {
        return;
    };
    // The networks of the lines, read the plain way.
    let nets: Vec<IpNet> = data
        .split(|byte| *byte == b'\n')
        .filter_map(|line| {
            let line = String::from_utf8_lossy(line);
            let text = line.split(['#', ';']).next()?.trim_matches(|c: char| c.is_ascii_whitespace());
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .ok()
                .map(|net| net.trunc())
        })
        .collect();
    assert_eq!(list.entries(), nets.len());
    for net in &nets {
        assert!(list.contains(net.network()), "{net}");
        assert!(list.contains(net.broadcast()), "{net}");
    }
    // Probes: the bytes of the input read as addresses, and the neighbours of each network.
    let mut probes: Vec<IpAddr> = data
        .chunks(4)
        .filter_map(|chunk| <[u8; 4]>::try_from(chunk).ok())
        .map(IpAddr::from)
        .chain(
            data.chunks(16)
                .filter_map(|chunk| <[u8; 16]>::try_from(chunk).ok())
                .map(IpAddr::from),
        )
        .collect();
    for net in &nets {
        match (net.network(), net.broadcast()) {
            (IpAddr::V4(first), IpAddr::V4(last)) => {
                probes.push(u32::from(first).wrapping_sub(1).to_be_bytes().into());
                probes.push(u32::from(last).wrapping_add(1).to_be_bytes().into());
            }
            (IpAddr::V6(first), IpAddr::V6(last)) => {
                probes.push(u128::from(first).wrapping_sub(1).to_be_bytes().into());
                probes.push(u128::from(last).wrapping_add(1).to_be_bytes().into());
            }
            _ => unreachable!("a network and its broadcast are of one family"),
        }
    }
    for probe in probes.into_iter().take(256) {
        let expected = nets.iter().any(|net| net.contains(&probe));
        assert_eq!(list.contains(probe), expected, "{probe}");
    }
});
