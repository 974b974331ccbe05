//! The operator's tag lists: files of CIDRs (Tor exits, hosting networks, a blocklist...), each
//! held as sorted, non-overlapping address ranges, so that a lookup is one binary search
//! whatever the size of the list (100,000 entries: 17 comparisons).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A line of a tag list that is neither an address, a CIDR, a comment nor blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// The line without its comment, shortened to 80 characters.
    pub text: String,
}

/// One tag list, parsed.
#[derive(Debug, Default)]
pub struct CidrList {
    /// IPv4 ranges (first, last), sorted and disjoint.
    v4: Vec<(u32, u32)>,
    /// IPv6 ranges (first, last), sorted and disjoint.
    v6: Vec<(u128, u128)>,
    /// The entries the file held, before merging.
    entries: usize,
}

impl CidrList {
    /// Parses a list: one address or CIDR per line (`192.0.2.1`, `198.51.100.0/24`,
    /// `2001:db8::/32`); `#` and `;` start a comment (FireHOL netsets, Spamhaus DROP and Tor's
    /// bulk exit list read as downloaded); blank lines are skipped. Host bits of a CIDR are
    /// ignored (`10.1.2.3/8` is `10.0.0.0/8`). The first line that is none of these fails the
    /// whole list: a list read in part would tag some addresses and silently miss others.
    pub fn parse(bytes: &[u8]) -> Result<Self, BadLine> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
            let line = String::from_utf8_lossy(line);
            let text = line
                .split(['#', ';'])
                .next()
                .unwrap_or_default()
                .trim_matches(|c: char| c.is_ascii_whitespace());
            if text.is_empty() {
                continue;
            }
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadLine {
                    line: index + 1,
                    text: text.chars().take(80).collect(),
                })?;
            match net.trunc() {
                IpNet::V4(net) => v4.push(net),
                IpNet::V6(net) => v6.push(net),
            }
        }
        let entries = v4.len() + v6.len();
        let mut v4: Vec<(u32, u32)> = Ipv4Net::aggregate(&v4)
            .into_iter()
            .map(|net| (net.network().into(), net.broadcast().into()))
            .collect();
        let mut v6: Vec<(u128, u128)> = Ipv6Net::aggregate(&v6)
            .into_iter()
            .map(|net| (net.network().into(), net.broadcast().into()))
            .collect();
        v4.sort_unstable();
        v6.sort_unstable();
        Ok(Self { v4, v6, entries })
    }

    /// Whether `ip` lies in the list.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => in_ranges(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => in_ranges(&self.v6, u128::from(ip)),
        }
    }

    /// How many entries the file held.
    pub fn entries(&self) -> usize {
        self.entries
    }
}

/// Whether `value` lies in one of `ranges` (sorted, disjoint).
fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], value: T) -> bool {
    // The ranges starting at or before `value`; only the last of them can hold it.
    let before = ranges.partition_point(|(first, _)| *first <= value);
    before > 0 && ranges[before - 1].1 >= value
}

#[cfg(test)]
mod test {
    use super::*;

    fn list(text: &str) -> CidrList {
        CidrList::parse(text.as_bytes()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_cidrs_and_comments_as_lists_are_downloaded() {
        let list = list(
            "# Tor bulk exit list, FireHOL style\n\
             \n\
             192.0.2.7\n\
             198.51.100.0/24   # a comment after\n\
             ; Spamhaus DROP style\n\
             203.0.113.128/25 ; SBL123\n\
             10.9.8.7/8\n\
             2001:db8:1::/48\r\n\
             \t2001:db8:2::5\t\n",
        );
        assert_eq!(list.entries(), 6);
        for inside in [
            "192.0.2.7",
            "198.51.100.0",
            "198.51.100.255",
            "203.0.113.128",
            "203.0.113.255",
            "10.0.0.0",
            "10.255.255.255",
            "2001:db8:1::",
            "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:2::5",
        ] {
            assert!(list.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "192.0.2.6",
            "192.0.2.8",
            "198.51.101.0",
            "198.51.99.255",
            "203.0.113.127",
            "9.255.255.255",
            "11.0.0.0",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8:2::4",
            "2001:db8:2::6",
            "2001:db8::",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(!list.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge_and_still_match() {
        let list = list("10.0.0.0/16\n10.0.1.0/24\n10.1.0.0/16\n10.0.5.5\n0.0.0.0/0\n");
        assert_eq!(list.v4, [(0, u32::MAX)]);
        assert!(list.contains(ip("10.0.1.1")) && list.contains(ip("255.255.255.255")));
        assert!(
            !list.contains(ip("::1")),
            "an IPv4 list holds no IPv6 address"
        );
        let list = super::CidrList::parse(b"10.0.0.0/24\n10.0.2.0/24\n10.0.1.0/25\n").unwrap();
        assert!(list.contains(ip("10.0.1.127")));
        assert!(!list.contains(ip("10.0.1.128")));
        assert!(list.contains(ip("10.0.2.0")));
    }

    #[test]
    fn the_first_bad_line_fails_the_list_naming_it() {
        for (text, line, shown) in [
            ("192.0.2.1\nexample.com\n", 2, "example.com"),
            ("192.0.2.1/33\n", 1, "192.0.2.1/33"),
            ("1.2.3.4-1.2.3.9\n", 1, "1.2.3.4-1.2.3.9"),
            ("\n\n# c\n  256.0.0.1  # x\n", 4, "256.0.0.1"),
            ("192.0.2.1 198.51.100.1\n", 1, "192.0.2.1 198.51.100.1"),
            ("\u{0}\u{ff}", 1, "\u{0}\u{ff}"),
        ] {
            let error = CidrList::parse(text.as_bytes()).unwrap_err();
            assert_eq!((error.line, error.text.as_str()), (line, shown), "{text:?}");
        }
        let long = CidrList::parse("x".repeat(10_000).as_bytes()).unwrap_err();
        assert_eq!(long.text.len(), 80);
        let invalid_utf8 = CidrList::parse(b"192.0.2.1\n\xff\xfe\n").unwrap_err();
        assert_eq!(invalid_utf8.line, 2);
    }

    #[test]
    fn an_empty_list_holds_nothing() {
        let list = list("# nothing yet\n");
        assert_eq!(list.entries(), 0);
        assert!(!list.contains(ip("192.0.2.1")));
        assert!(!list.contains(ip("2001:db8::1")));
    }

    #[test]
    fn a_large_list_answers_like_a_linear_scan() {
        // 4,000 random /16../32 networks; every probe is checked against the plain definition.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let nets: Vec<Ipv4Net> = (0..4_000)
            .map(|_| {
                let value = next();
                Ipv4Net::new((value as u32).into(), 16 + (value >> 32) as u8 % 17)
                    .unwrap()
                    .trunc()
            })
            .collect();
        let text: String = nets.iter().map(|net| format!("{net}\n")).collect();
        let list = CidrList::parse(text.as_bytes()).unwrap();
        for _ in 0..4_000 {
            let probe = std::net::Ipv4Addr::from(next() as u32);
            let expected = nets.iter().any(|net| net.contains(&probe));
            assert_eq!(list.contains(probe.into()), expected, "{probe}");
        }
        // And the edges of networks, inside and just outside.
        for net in nets.iter().take(1_000) {
            assert!(list.contains(net.network().into()));
            assert!(list.contains(net.broadcast().into()));
            let first = u32::from(net.network());
            let last = u32::from(net.broadcast());
            for probe in [first.wrapping_sub(1), last.wrapping_add(1)] {
                let probe = std::net::Ipv4Addr::from(probe);
                let expected = nets.iter().any(|net| net.contains(&probe));
                assert_eq!(list.contains(probe.into()), expected, "{probe}");
            }
        }
    }
}
