//! Validated domain types shared by the store, the update endpoints and the CLI.
//!
//! Everything here is pure: no I/O, no SQL, no HTTP. A value of these types has passed its
//! checks, so code that holds one does not check again.

pub mod rdata;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A DNS name in the form we store and compare it: lower case, no trailing dot.
///
/// Used for DDNS hostnames, zone apexes and name-server names. Labels are letters, digits,
/// `-` and `_` (for service names such as `_acme-challenge`), 1 to 63 bytes, not starting or
/// ending with `-`; the whole name is at most 253 bytes (RFC 1035 §2.3.4 without the final dot).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a string is not a [`DomainName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    /// Nothing was given.
    #[error("empty name")]
    Empty,
    /// Longer than 253 bytes.
    #[error("name longer than 253 characters")]
    TooLong,
    /// A label is empty (`a..b`) or longer than 63 bytes.
    #[error("a label is empty or longer than 63 characters")]
    BadLabelLength,
    /// A character outside letters, digits, `-` and `_`, or a label starting or ending with `-`.
    #[error("invalid character or hyphen placement")]
    BadCharacter,
}

impl DomainName {
    /// The name as stored: lower case, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `zone` or lies below it.
    pub fn is_within(&self, zone: &Self) -> bool {
        self.0 == zone.0
            || (self.0.len() > zone.0.len()
                && self.0.ends_with(zone.0.as_str())
                && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }
}

impl FromStr for DomainName {
    type Err = DomainNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.strip_suffix('.').unwrap_or(text);
        check_name_lengths(name)?;
        for label in name.split('.') {
            let valid_chars = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_chars || label.starts_with('-') || label.ends_with('-') {
                return Err(DomainNameError::BadCharacter);
            }
        }
        Ok(Self(name.to_ascii_lowercase()))
    }
}

/// Checks the lengths DNS allows a name (without its final dot), whatever its characters:
/// at most 253 octets (255 on the wire), labels of 1 to 63 octets. Hostnames
/// ([`DomainName`]) and the names pdns sends to the backend (wildcards included) both obey it.
pub fn check_name_lengths(name: &str) -> Result<(), DomainNameError> {
    if name.is_empty() {
        return Err(DomainNameError::Empty);
    }
    if name.len() > 253 {
        return Err(DomainNameError::TooLong);
    }
    if name
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err(DomainNameError::BadLabelLength);
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The record type of a DDNS domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address record.
    A,
    /// IPv6 address record.
    Aaaa,
}

impl RecordType {
    /// The type as DNS and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
        }
    }

    /// The record type that holds `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::A,
            IpAddr::V6(_) => Self::Aaaa,
        }
    }
}

impl FromStr for RecordType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("A") {
            Ok(Self::A)
        } else if text.eq_ignore_ascii_case("AAAA") {
            Ok(Self::Aaaa)
        } else {
            Err(format!("record type must be A or AAAA, not {text:?}"))
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's plan: decides the TTL of their records and whether API keys work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plan {
    /// No API keys; records served with a one-hour TTL.
    Free,
    /// Paid plans: API keys, one-minute TTL.
    Plus,
    /// See [`Plan::Plus`].
    Pro,
    /// See [`Plan::Plus`].
    Elite,
}

impl Plan {
    /// The plan as the store and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Plus => "plus",
            Self::Pro => "pro",
            Self::Elite => "elite",
        }
    }

    /// TTL of the plan's DDNS records, in seconds. Derived when records are served, so a plan
    /// change applies to the very next answer.
    pub fn ttl(self) -> u32 {
        match self {
            Self::Free => 3600,
            Self::Plus | Self::Pro | Self::Elite => 60,
        }
    }

    /// Whether the plan may authenticate with API keys.
    pub fn allows_api_keys(self) -> bool {
        self != Self::Free
    }
}

impl FromStr for Plan {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "free" => Ok(Self::Free),
            "plus" => Ok(Self::Plus),
            "pro" => Ok(Self::Pro),
            "elite" => Ok(Self::Elite),
            _ => Err(format!(
                "plan must be free, plus, pro or elite, not {text:?}"
            )),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope an API key needs to update domains.
pub const SCOPE_DOMAINS_UPDATE: &str = "domains:update";

/// Checks an API-key scope name: `resource:action`, lower-case letters and `_`.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    let valid = scope.split_once(':').is_some_and(|(resource, action)| {
        let word =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        word(resource) && word(action)
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "scope must look like resource:action (e.g. {SCOPE_DOMAINS_UPDATE}), not {scope:?}"
        ))
    }
}

/// A login name: what `users.username` holds.
///
/// Lower case letters, digits, `.`, `_` and `-`, 1 to 64 characters. Never contains `@`, so that
/// "username or email" logins cannot be ambiguous.
pub fn normalize_username(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!(
            "username must be 1-64 letters, digits, '.', '_' or '-', not {name:?}"
        ))
    }
}

/// An email address, checked only for shape (`local@domain`), stored as given but compared
/// case-insensitively.
pub fn normalize_email(email: &str) -> Result<String, String> {
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email.to_string())
    } else {
        Err(format!("not an email address: {email:?}"))
    }
}

/// How a change to a domain was authenticated, as the audit trail records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `Authorization: Bearer ak_...`.
    Bearer,
    /// `Authorization: Basic ...`, with a password or an API key.
    Basic,
    /// `username` and `password` request parameters.
    Query,
    /// The admin CLI.
    Admin,
}

impl AuthMethod {
    /// The method as the audit trail spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::Query => "query",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a NOTIFY target as pdns's ALSO-NOTIFY takes it: `192.0.2.1`, `192.0.2.1:5300`,
/// `2001:db8::1` or `[2001:db8::1]:5300`. Returns the address and the port, if given.
pub fn parse_notify_target(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    text.parse::<std::net::SocketAddr>()
        .map(|address| (address.ip(), Some(address.port())))
        .map_err(|_| format!("not an address or address:port: {text:?}"))
}

/// The canonical form of a NOTIFY target: `ip`, `ip:port`, or `[v6]:port`.
pub fn format_notify_target(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (ip, None) => ip.to_string(),
        (IpAddr::V4(ip), Some(port)) => format!("{ip}:{port}"),
        (IpAddr::V6(ip), Some(port)) => format!("[{ip}]:{port}"),
    }
}

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

/// The audit tags of `ip`: the special-purpose ranges it lies in, in table order, no repeats.
pub fn ip_tags(ip: IpAddr) -> Vec<&'static str> {
    let mut tags: Vec<&'static str> = Vec::new();
    for (range, tag) in SPECIAL_RANGES {
        let net: IpNet = range.parse().expect("the range table holds valid CIDRs");
        if net.contains(&ip) && !tags.contains(tag) {
            tags.push(tag);
        }
    }
    tags
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn domain_names_are_lower_cased_and_lose_the_trailing_dot() {
        let name: DomainName = "Home.DYN.Example.NET.".parse().unwrap();
        assert_eq!(name.as_str(), "home.dyn.example.net");
    }

    #[test]
    fn domain_names_reject_bad_shapes() {
        assert_eq!("".parse::<DomainName>(), Err(DomainNameError::Empty));
        assert_eq!(".".parse::<DomainName>(), Err(DomainNameError::Empty));
        assert_eq!(
            "a..b".parse::<DomainName>(),
            Err(DomainNameError::BadLabelLength)
        );
        assert_eq!(
            "-a.b".parse::<DomainName>(),
            Err(DomainNameError::BadCharacter)
        );
        assert_eq!(
            "a b.c".parse::<DomainName>(),
            Err(DomainNameError::BadCharacter)
        );
        assert_eq!(
            "a/b.c".parse::<DomainName>(),
            Err(DomainNameError::BadCharacter)
        );
        let long_label = format!("{}.com", "a".repeat(64));
        assert_eq!(
            long_label.parse::<DomainName>(),
            Err(DomainNameError::BadLabelLength)
        );
    }

    #[test]
    fn domain_names_of_253_characters_pass_and_254_fail() {
        let label = "a".repeat(63);
        let name_253 = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(name_253.len(), 253);
        assert!(name_253.parse::<DomainName>().is_ok());
        assert!(format!("{name_253}.").parse::<DomainName>().is_ok());
        let name_254 = format!("{label}.{label}.{label}.{}", "b".repeat(62));
        assert_eq!(
            name_254.parse::<DomainName>(),
            Err(DomainNameError::TooLong)
        );
    }

    #[test]
    fn within_zone_needs_a_label_boundary() {
        let zone: DomainName = "dyn.example".parse().unwrap();
        let inside: DomainName = "a.dyn.example".parse().unwrap();
        let lookalike: DomainName = "adyn.example".parse().unwrap();
        assert!(inside.is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!lookalike.is_within(&zone));
        assert!(!zone.is_within(&inside));
    }

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

    #[test]
    fn notify_targets_parse_with_and_without_port() {
        let parse =
            |text: &str| parse_notify_target(text).map(|(ip, port)| format_notify_target(ip, port));
        assert_eq!(parse("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(parse("192.0.2.1:5300").unwrap(), "192.0.2.1:5300");
        assert_eq!(parse("2001:DB8::1").unwrap(), "2001:db8::1");
        assert_eq!(parse("[2001:db8::1]:5300").unwrap(), "[2001:db8::1]:5300");
        assert!(parse("ns1.example.net").is_err());
        assert!(parse("192.0.2.1:99999").is_err());
    }

    #[test]
    fn plans_set_ttl_and_key_rights() {
        assert_eq!(Plan::Free.ttl(), 3600);
        assert_eq!(Plan::Plus.ttl(), 60);
        assert!(!Plan::Free.allows_api_keys());
        assert!(Plan::Elite.allows_api_keys());
        assert_eq!("PRO".parse::<Plan>(), Ok(Plan::Pro));
        assert!("gold".parse::<Plan>().is_err());
    }

    #[test]
    fn usernames_emails_and_scopes() {
        assert_eq!(normalize_username("Alice.B-1"), Ok("alice.b-1".to_string()));
        assert!(normalize_username("alice@example.com").is_err());
        assert!(normalize_username("").is_err());
        assert!(normalize_email("alice@example.com").is_ok());
        assert!(normalize_email("alice").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        assert!(validate_scope("domains:update").is_ok());
        assert!(validate_scope("domains").is_err());
        assert!(validate_scope("Domains:update").is_err());
    }
}
