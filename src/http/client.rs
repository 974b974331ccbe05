//! Who is asking: the client's address behind the operator's reverse proxies.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// The client as detected: X-Forwarded-For from a trusted proxy, else the TCP peer.
    pub source: IpAddr,
    /// The TCP peer.
    pub peer: IpAddr,
}

/// Detects the client's address: the product spec's "client's public IP".
///
/// With a TCP peer in `trusted` (a reverse proxy of the operator's), the `X-Forwarded-For`
/// entries of every header line, in order, are walked from the right, skipping trusted
/// addresses: the first untrusted one is the client. Proxies *append* (nginx's
/// `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`, load balancers), so the left
/// of the header is whatever the client sent and only the right is vouched for; taking the
/// first entry let any client pick its own address. An entry that is not an address stops
/// the walk at the last address vouched for. Without a trusted peer, the peer is the client.
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, from a dual-stack socket) count as the
/// IPv4 address they carry.
pub fn detect_client<'a>(
    peer: SocketAddr,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> ClientAddress {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut source = peer;
    if is_trusted(&peer) {
        let lines: Vec<&str> = forwarded_for
            .into_iter()
            .filter_map(|line| std::str::from_utf8(line).ok())
            .collect();
        let entries = lines.iter().flat_map(|line| line.split(',')).map(str::trim);
        let entries: Vec<&str> = entries.filter(|entry| !entry.is_empty()).collect();
        for entry in entries.iter().rev() {
            let Ok(address) = entry.parse::<IpAddr>() else {
                break;
            };
            source = address.to_canonical();
            if !is_trusted(&source) {
                break;
            }
        }
    }
    ClientAddress { source, peer }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let direct: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let one = |text: &'static str| [text.as_bytes()];

        // The operator's proxy sets the header: its one entry is the client.
        let via_proxy = detect_client(proxy, one("203.0.113.5"), &trusted);
        assert_eq!(via_proxy.source.to_string(), "203.0.113.5");
        assert_eq!(via_proxy.peer.to_string(), "127.0.0.1");

        // An appending proxy: the client claimed 6.6.6.6; only the rightmost is real.
        let appended = detect_client(proxy, one("6.6.6.6, 203.0.113.5"), &trusted);
        assert_eq!(appended.source.to_string(), "203.0.113.5");

        let spoofed = detect_client(direct, one("203.0.113.5"), &trusted);
        assert_eq!(spoofed.source.to_string(), "198.51.100.9");

        let garbage = detect_client(proxy, one("unknown"), &trusted);
        assert_eq!(garbage.source.to_string(), "127.0.0.1");
        let nothing: [&[u8]; 0] = [];
        assert_eq!(
            detect_client(proxy, nothing, &trusted).source.to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_over_trusted_hops_and_header_lines() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        // Two proxies of ours (10.0.0.2 then 127.0.0.1); the client and its claim before.
        let walk = |lines: &[&'static str]| {
            detect_client(proxy, lines.iter().map(|line| line.as_bytes()), &trusted)
                .source
                .to_string()
        };
        assert_eq!(walk(&["6.6.6.6, 198.51.100.7, 10.0.0.2"]), "198.51.100.7");
        assert_eq!(walk(&["6.6.6.6", "198.51.100.7, 10.0.0.2"]), "198.51.100.7");
        assert_eq!(walk(&["6.6.6.6, 198.51.100.7", "10.0.0.2"]), "198.51.100.7");
        // Every entry trusted: the leftmost is the client (a LAN client behind our proxy).
        assert_eq!(walk(&["10.1.2.3, 10.0.0.2"]), "10.1.2.3");
        // Garbage stops the walk at the last address vouched for.
        assert_eq!(walk(&["198.51.100.7, unknown, 10.0.0.2"]), "10.0.0.2");
        assert_eq!(walk(&["2001:db8::7, ::ffff:10.0.0.2"]), "2001:db8::7");
    }

    #[test]
    fn ipv4_mapped_peers_count_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
        let nothing: [&[u8]; 0] = [];
        let client = detect_client(mapped, nothing, &[]);
        assert_eq!(client.source.to_string(), "192.0.2.1");
        assert_eq!(client.peer.to_string(), "192.0.2.1");
    }
}
