//! Addresses from clients: strict parsing, the family a record needs, the audit tags of
//! special-purpose ranges, and what the audit trail records of an address ([`IpFacts`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

use super::RecordType;

/// Why an address from a client was refused. The `Display` text is the body of the 400 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Not an IPv4 or IPv6 address in strict form.
    #[error("invalid IP address")]
    Invalid,
    /// An IPv6 address for an A record.
    #[error("IPv4 required for an A record")]
    Ipv4Required,
    /// An IPv4 address for an AAAA record.
    #[error("IPv6 required for an AAAA record")]
    Ipv6Required,
}

/// Parses an address strictly: no leading zeros, no zone index (`%eth0`), no spaces, no
/// brackets; and one a host can have: not unspecified (`0.0.0.0`, `::`), not the limited
/// broadcast `255.255.255.255`, not multicast (also not as an IPv4-mapped IPv6 address).
/// Private, loopback and documentation addresses are allowed: people point names at LAN hosts.
///
/// The standard library's parser is already this strict; this function exists to name the rule
/// and to give the 400 reason. IPv6 comes back as an `Ipv6Addr`, whose `Display` is the
/// canonical RFC 5952 form, which is what we store and compare.
pub fn parse_ip(text: &str) -> Result<IpAddr, IpError> {
    let ip: IpAddr = text.parse().map_err(|_| IpError::Invalid)?;
    let canonical = ip.to_canonical();
    let impossible = canonical.is_unspecified()
        || canonical.is_multicast()
        || canonical == IpAddr::from([255, 255, 255, 255]);
    if impossible {
        return Err(IpError::Invalid);
    }
    Ok(ip)
}

/// Checks that `ip` fits a record of type `record_type`.
pub fn check_family(record_type: RecordType, ip: IpAddr) -> Result<(), IpError> {
    match (record_type, ip) {
        (RecordType::A, IpAddr::V4(_)) | (RecordType::Aaaa, IpAddr::V6(_)) => Ok(()),
        (RecordType::A, IpAddr::V6(_)) => Err(IpError::Ipv4Required),
        (RecordType::Aaaa, IpAddr::V4(_)) => Err(IpError::Ipv6Required),
    }
}

/// Special-purpose address ranges (IANA registries, RFC 6890) and the audit tag for each.
///
/// An address may carry several tags (`::ffff:10.0.0.1` is `ipv4-mapped`; `192.0.2.1` is
/// `documentation`). Public unicast addresses carry none.
const SPECIAL_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this-network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "ietf-protocol"),
    ("192.0.2.0/24", "documentation"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "ipv4-mapped"),
    ("64:ff9b::/96", "nat64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "teredo"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// [`SPECIAL_RANGES`] parsed once into (network, mask, tag) per family: every audit lookup
/// goes through them, so membership is one AND and one comparison per range.
struct SpecialNets {
    /// IPv4 ranges, in table order.
    v4: Vec<(u32, u32, &'static str)>,
    /// IPv6 ranges, in table order.
    v6: Vec<(u128, u128, &'static str)>,
}

/// See [`SpecialNets`].
static SPECIAL_NETS: LazyLock<SpecialNets> = LazyLock::new(|| {
    let mut nets = SpecialNets {
        v4: Vec::new(),
        v6: Vec::new(),
    };
    for (range, tag) in SPECIAL_RANGES {
        match range.parse().expect("the range table holds valid CIDRs") {
            IpNet::V4(net) => nets
                .v4
                .push((net.network().into(), net.netmask().into(), *tag)),
            IpNet::V6(net) => nets
                .v6
                .push((net.network().into(), net.netmask().into(), *tag)),
        }
    }
    nets
});

/// The audit tags of `ip`: the special-purpose ranges it lies in, in table order, no repeats.
pub fn ip_tags(ip: IpAddr) -> Vec<&'static str> {
    fn matching<T: Copy + Eq + std::ops::BitAnd<Output = T>>(
        table: &[(T, T, &'static str)],
        ip: T,
    ) -> Vec<&'static str> {
        let mut tags: Vec<&'static str> = Vec::new();
        for (network, mask, tag) in table {
            if ip & *mask == *network && !tags.contains(tag) {
                tags.push(tag);
            }
        }
        tags
    }
    match ip {
        IpAddr::V4(ip) => matching(&SPECIAL_NETS.v4, u32::from(ip)),
        IpAddr::V6(ip) => matching(&SPECIAL_NETS.v6, u128::from(ip)),
    }
}

/// Whether `tag` is the tag of a special-purpose range (`private`, `documentation`...).
pub fn is_special_tag(tag: &str) -> bool {
    SPECIAL_RANGES.iter().any(|(_, special)| *special == tag)
}

/// An ISO 3166-1 alpha-2 country code, in upper case (`DE`, `US`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Two ASCII letters, in either case; anything else (`""`, `"DEU"`, `"1A"`) is not a code.
    pub fn parse(text: &str) -> Option<Self> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code, as stored.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("two ASCII letters")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the audit trail records of an address besides the address itself: where it is and what
/// it is. Found by the service's IP intelligence (`intel`) before a change is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpFacts {
    /// The country the address is in; None for special-purpose ranges, or without a GeoIP
    /// database, or when the database does not know it.
    pub country: Option<CountryCode>,
    /// Its tags: special-purpose ranges ([`ip_tags`]) first, then `asn:NUMBER`, then the
    /// names of the operator's lists that hold it.
    pub tags: Vec<String>,
}

impl IpFacts {
    /// What is known of `ip` without any database: its special-purpose ranges.
    pub fn special(ip: IpAddr) -> Self {
        Self {
            country: None,
            tags: ip_tags(ip).into_iter().map(str::to_owned).collect(),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ip_parsing_is_strict_and_canonical() {
        assert_eq!(parse_ip("192.0.2.1").unwrap().to_string(), "192.0.2.1");
        for lan in [
            "10.0.0.1",
            "192.168.1.2",
            "127.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(parse_ip(lan).is_ok(), "{lan} stays allowed");
        }
        assert_eq!(
            parse_ip("2001:DB8:0::1").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            parse_ip("2001:0db8:0000:0000:0000:0000:0000:0001")
                .unwrap()
                .to_string(),
            "2001:db8::1"
        );
        for bad in [
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "256.1.1.1",
            "fe80::1%eth0",
            "[2001:db8::1]",
            "",
            "example.com",
            "1.2.3.4/32",
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "::ffff:224.0.0.1",
        ] {
            assert_eq!(
                parse_ip(bad),
                Err(IpError::Invalid),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn family_must_match_the_record_type() {
        let v4 = parse_ip("192.0.2.1").unwrap();
        let v6 = parse_ip("2001:db8::1").unwrap();
        assert_eq!(check_family(RecordType::A, v4), Ok(()));
        assert_eq!(check_family(RecordType::Aaaa, v6), Ok(()));
        assert_eq!(check_family(RecordType::A, v6), Err(IpError::Ipv4Required));
        assert_eq!(
            check_family(RecordType::Aaaa, v4),
            Err(IpError::Ipv6Required)
        );
        assert_eq!(
            IpError::Ipv4Required.to_string(),
            "IPv4 required for an A record"
        );
    }

    #[test]
    fn country_codes_are_two_letters_in_upper_case() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert_eq!(CountryCode::parse("US").unwrap().to_string(), "US");
        for bad in ["", "D", "DEU", "1A", "D-", "é", "ÄÖ", " D"] {
            assert_eq!(CountryCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn special_ranges_are_tagged() {
        let tags = |s: &str| ip_tags(s.parse().unwrap());
        assert_eq!(tags("8.8.8.8"), Vec::<&str>::new());
        assert_eq!(tags("2a00:1450::1"), Vec::<&str>::new());
        assert_eq!(tags("10.1.2.3"), ["private"]);
        assert_eq!(tags("192.168.1.1"), ["private"]);
        assert_eq!(tags("172.31.255.255"), ["private"]);
        assert_eq!(tags("172.32.0.1"), Vec::<&str>::new());
        assert_eq!(tags("100.64.0.1"), ["cgnat"]);
        assert_eq!(tags("127.0.0.1"), ["loopback"]);
        assert_eq!(tags("::1"), ["loopback"]);
        assert_eq!(tags("169.254.1.1"), ["link-local"]);
        assert_eq!(tags("fe80::1"), ["link-local"]);
        assert_eq!(tags("203.0.113.9"), ["documentation"]);
        assert_eq!(tags("2001:db8::1"), ["documentation"]);
        assert_eq!(tags("fd00::1"), ["unique-local"]);
        assert_eq!(tags("::ffff:10.0.0.1"), ["ipv4-mapped"]);
    }
}
