//! The values every layer speaks of: validated names and types shared by the store, the
//! protocols and the CLI, and the records they exchange (accounts, keys, zones, domains,
//! audit rows, what an update asks and comes to). The protocols read these, never the store's
//! rows: the store makes them, `served` hands them out.
//!
//! Everything here is pure: no I/O, no SQL, no HTTP. A value of these types has passed its
//! checks, so code that holds one does not check again.

pub mod account;
pub mod audit;
pub mod challenge;
pub mod dnssec;
pub mod dnsupdate;
pub mod domain;
mod ip;
pub mod ownership;
mod prefix;
pub mod rdata;
pub mod time;
pub mod tsig;
pub mod zone;

pub use self::ip::{
    CountryCode, IpError, IpFacts, check_family, ip_tags, is_special_tag, parse_ip,
};
pub use self::prefix::{DelegatedPrefix, HostSuffix, PrefixError, PrefixUpdate, parse_subnet_id};

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
        is_within(&self.0, &zone.0)
    }
}

/// A name as the store holds and compares it: lower case, no final dot (the root becomes
/// `""`). The one normalisation of names, for hostnames ([`DomainName`]) and for whatever
/// pdns asks (wildcards and other octets included).
pub fn normalize_name(text: &str) -> String {
    text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase()
}

/// Whether `name` is `zone` or below it, on label boundaries (both normalised).
pub fn is_within(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

/// The names strictly between `name` and `zone`, nearest first: `a.b.c.example.com` in
/// `example.com` gives `b.c.example.com`, then `c.example.com`. Empty when `name` is not
/// strictly below `zone` (both normalised). The names whose existence `name` implies (empty
/// non-terminals) and whose NS records would put it below a delegation.
pub fn names_between<'a>(name: &'a str, zone: &str) -> impl Iterator<Item = &'a str> {
    let below = name != zone && is_within(name, zone);
    let mut current = name;
    std::iter::from_fn(move || {
        if !below {
            return None;
        }
        let (_, parent) = current.split_once('.')?;
        if parent.len() <= zone.len() {
            return None;
        }
        current = parent;
        Some(parent)
    })
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
        Ok(Self(normalize_name(name)))
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

/// A value that is not one of its kind (a record type, a plan, a scope, a username...): what
/// was expected, and what came instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expected}, not {}", shown(.found))]
pub struct InvalidValue {
    /// What was expected, e.g. "record type must be A or AAAA".
    pub expected: &'static str,
    /// What came.
    pub found: String,
}

/// Most characters of a value that an error message quotes.
const MOST_SHOWN: usize = 100;

/// `value` as an error message quotes it: escaped (Rust's debug quoting, so no control
/// character reaches a terminal or a log), and cut after 100 characters with its
/// length, so that no input, however long, makes a long message.
pub fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MOST_SHOWN).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes)", value.len())
    }
}

impl InvalidValue {
    /// `found` is not what `expected` says.
    pub fn new(expected: &'static str, found: &str) -> Self {
        Self {
            expected,
            found: found.to_string(),
        }
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
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("A") {
            Ok(Self::A)
        } else if text.eq_ignore_ascii_case("AAAA") {
            Ok(Self::Aaaa)
        } else {
            Err(InvalidValue::new("record type must be A or AAAA", text))
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
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "free" => Ok(Self::Free),
            "plus" => Ok(Self::Plus),
            "pro" => Ok(Self::Pro),
            "elite" => Ok(Self::Elite),
            _ => Err(InvalidValue::new(
                "plan must be free, plus, pro or elite",
                text,
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

/// The scope that lets an API key set ACME DNS-01 challenge values of its owner's hosts, and
/// nothing else (a key kept on a web server for its certificate renewals).
pub const SCOPE_ACME_UPDATE: &str = "acme:update";

/// Checks an API-key scope name: `resource:action`, lower-case letters and `_`.
pub fn validate_scope(scope: &str) -> Result<(), InvalidValue> {
    let valid = scope.split_once(':').is_some_and(|(resource, action)| {
        let word =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        word(resource) && word(action)
    });
    if valid {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "scope must look like resource:action (e.g. domains:update)",
            scope,
        ))
    }
}

/// A login name: what `users.username` holds.
///
/// Lower case letters, digits, `.`, `_` and `-`, 1 to 64 characters. Never contains `@`, so that
/// "username or email" logins cannot be ambiguous.
pub fn normalize_username(name: &str) -> Result<String, InvalidValue> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(InvalidValue::new(
            "username must be 1-64 letters, digits, '.', '_' or '-'",
            name,
        ))
    }
}

/// An email address, checked only for shape (`local@domain`), stored as given but compared
/// case-insensitively.
pub fn normalize_email(email: &str) -> Result<String, InvalidValue> {
    // RFC 5321/5322 syntax (the `email_address` crate): an atom or quoted local part, a
    // domain of at least two labels; no display name, no domain literal (`[192.0.2.1]`), no
    // control character, nothing past 254 octets.
    let options = email_address::Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email_address::EmailAddress::parse_with_options(email, options).is_ok();
    if valid {
        Ok(email.to_string())
    } else {
        Err(InvalidValue::new(
            "email must be an address like local@example.net",
            email,
        ))
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
    /// An RFC 2136 update signed with a TSIG key (the audit row names the key).
    Tsig,
}

impl AuthMethod {
    /// The method as the audit trail spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::Query => "query",
            Self::Admin => "admin",
            Self::Tsig => "tsig",
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

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_between_a_name_and_its_zone() {
        let between = |name, zone| names_between(name, zone).collect::<Vec<_>>();
        assert_eq!(
            between("a.b.c.example.com", "example.com"),
            ["b.c.example.com", "c.example.com"]
        );
        assert!(between("a.example.com", "example.com").is_empty());
        assert!(between("example.com", "example.com").is_empty());
        assert!(between("a.b.other.com", "example.com").is_empty());
        assert!(between("a.bexample.com", "example.com").is_empty());
    }

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
    fn quoted_values_are_escaped_and_cut() {
        assert_eq!(shown("alice"), "\"alice\"");
        assert_eq!(shown("a\u{1b}[2Jb"), "\"a\\u{1b}[2Jb\"");
        let long = "é".repeat(150);
        assert_eq!(shown(&long), format!("{:?}… (300 bytes)", "é".repeat(100)));
        let error = InvalidValue::new("record type must be A or AAAA", &"T".repeat(10_000));
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn usernames_emails_and_scopes() {
        assert_eq!(normalize_username("Alice.B-1"), Ok("alice.b-1".to_string()));
        assert!(normalize_username("alice@example.com").is_err());
        assert!(normalize_username("").is_err());
        assert!(normalize_email("alice@example.com").is_ok());
        assert!(normalize_email("alice").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        assert!(normalize_email("alice+ddns@mail.example.co.uk").is_ok());
        for bad in [
            "alice@example",
            "alice@[192.0.2.1]",
            "Alice <alice@example.com>",
            "alice@@example.com",
            "alice@example..com",
            ".alice@example.com",
            "alice@-example.com",
            "<script>@example.com",
            "alice@example.com\u{7}",
            "alice\u{0}@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(validate_scope("domains:update").is_ok());
        assert!(validate_scope("domains").is_err());
        assert!(validate_scope("Domains:update").is_err());
    }

    #[test]
    fn names_normalise_and_nest_on_label_boundaries() {
        assert_eq!(normalize_name("WwW.ExAmPlE.CoM."), "www.example.com");
        assert_eq!(normalize_name("."), "");
        assert!(is_within("a.example.com", "example.com"));
        assert!(is_within("example.com", "example.com"));
        assert!(!is_within("aexample.com", "example.com"));
        assert!(!is_within("com", "example.com"));
    }
}
