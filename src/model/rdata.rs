//! Static record types and their content, validated and put in the presentation format pdns
//! serves: absolute names end with a dot, TXT and CAA values are quoted, MX and SRV carry their
//! numbers inside the content.
//!
//! What an admin types is forgiving (`mail.example.net` or `mail.example.net.`, TXT with or
//! without quotes); what is stored is one canonical form, so duplicates are detected and pdns
//! never gets content it cannot parse (which it would answer with SERVFAIL).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::DomainName;

/// The record types an admin can keep in a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaticType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias: the only record at its name.
    Cname,
    /// Mail exchanger: `preference target`.
    Mx,
    /// Text: one or more quoted strings of at most 255 bytes.
    Txt,
    /// Name server, for delegations below the apex (the apex set comes from the zone).
    Ns,
    /// Service: `priority weight port target`.
    Srv,
    /// Certification authority authorisation: `flags tag "value"`.
    Caa,
    /// Pointer, for reverse zones (Kea's reverse DDNS, RFC 1035).
    Ptr,
    /// DHCP identifier (RFC 4701), base64: what DHCP servers add beside the addresses they
    /// publish, to tell their clients' names apart (RFC 4703).
    Dhcid,
}

impl StaticType {
    /// Every type, in the order of the error message of [`FromStr`].
    pub const ALL: [Self; 10] = [
        Self::A,
        Self::Aaaa,
        Self::Cname,
        Self::Mx,
        Self::Txt,
        Self::Ns,
        Self::Srv,
        Self::Caa,
        Self::Ptr,
        Self::Dhcid,
    ];

    /// The type as DNS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Ns => "NS",
            Self::Srv => "SRV",
            Self::Caa => "CAA",
            Self::Ptr => "PTR",
            Self::Dhcid => "DHCID",
        }
    }
}

impl FromStr for StaticType {
    type Err = super::InvalidValue;

    /// Any case; no allocation (every lookup pdns asks parses its qtype here).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                super::InvalidValue::new(
                    "record type must be one of A, AAAA, CNAME, MX, TXT, NS, SRV, CAA, PTR, DHCID",
                    text,
                )
            })
    }
}

impl From<super::RecordType> for StaticType {
    fn from(record_type: super::RecordType) -> Self {
        match record_type {
            super::RecordType::A => Self::A,
            super::RecordType::Aaaa => Self::Aaaa,
        }
    }
}

/// The type of a record as served: the zone's SOA, or a type that rows hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServedType {
    /// The zone's SOA, made from the zone row.
    Soa,
    /// Any other (the apex NS set, static records, DDNS addresses).
    Stored(StaticType),
}

impl ServedType {
    /// The type as DNS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soa => "SOA",
            Self::Stored(stored) => stored.as_str(),
        }
    }
}

impl FromStr for ServedType {
    type Err = super::InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("SOA") {
            Ok(Self::Soa)
        } else {
            text.parse().map(Self::Stored)
        }
    }
}

impl fmt::Display for ServedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for StaticType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks `content` for a record of type `record_type` and returns its canonical form.
pub fn normalize_content(record_type: StaticType, content: &str) -> Result<String, String> {
    let content = content.trim();
    let fields: Vec<&str> = content.split_whitespace().collect();
    let wrong =
        |expected: &str| format!("{record_type} content must be {expected}, not {content:?}");
    match record_type {
        StaticType::A => content
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| wrong("an IPv4 address")),
        StaticType::Aaaa => content
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| wrong("an IPv6 address")),
        StaticType::Cname | StaticType::Ns | StaticType::Ptr => {
            target(content).ok_or_else(|| wrong("a host name"))
        }
        StaticType::Dhcid => {
            // RFC 4701 §3.3: identifier type (2 bytes), digest type (1), digest; base64,
            // spaces allowed in the presentation format.
            let text: String = content.split_whitespace().collect();
            let engine = &base64::engine::general_purpose::STANDARD;
            match base64::Engine::decode(engine, &text) {
                Ok(bytes) if bytes.len() >= 4 => Ok(base64::Engine::encode(engine, bytes)),
                _ => Err(wrong(
                    "base64 of an identifier type, a digest type and a digest",
                )),
            }
        }
        StaticType::Mx => match fields.as_slice() {
            [preference, host] => {
                let preference: u16 = preference.parse().map_err(|_| wrong("`preference host`"))?;
                let host = target_or_root(host).ok_or_else(|| wrong("`preference host`"))?;
                Ok(format!("{preference} {host}"))
            }
            _ => Err(wrong("`preference host`")),
        },
        StaticType::Srv => match fields.as_slice() {
            [priority, weight, port, host] => {
                let number = |text: &str| {
                    text.parse::<u16>()
                        .map_err(|_| wrong("`priority weight port host`"))
                };
                let host =
                    target_or_root(host).ok_or_else(|| wrong("`priority weight port host`"))?;
                Ok(format!(
                    "{} {} {} {host}",
                    number(priority)?,
                    number(weight)?,
                    number(port)?
                ))
            }
            _ => Err(wrong("`priority weight port host`")),
        },
        StaticType::Txt => {
            if content.starts_with('"') {
                let strings = parse_quoted_strings(content)
                    .map_err(|error| format!("TXT content: {error}"))?;
                Ok(strings
                    .iter()
                    .map(|bytes| quote(bytes))
                    .collect::<Vec<_>>()
                    .join(" "))
            } else if content.is_empty() {
                Ok("\"\"".into())
            } else {
                Ok(content
                    .as_bytes()
                    .chunks(255)
                    .map(quote)
                    .collect::<Vec<_>>()
                    .join(" "))
            }
        }
        StaticType::Caa => {
            let mut parts = content.splitn(3, char::is_whitespace);
            let (Some(flags), Some(tag), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(wrong("`flags tag value`"));
            };
            let flags: u8 = flags.parse().map_err(|_| wrong("`flags tag value`"))?;
            let tag_ok = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric());
            if !tag_ok {
                return Err(wrong("`flags tag value` with an alphanumeric tag"));
            }
            let value = value.trim();
            let value = if value.starts_with('"') {
                match parse_quoted_strings(value)
                    .map_err(|error| format!("CAA value: {error}"))?
                    .as_slice()
                {
                    [one] => one.clone(),
                    _ => return Err(wrong("`flags tag value` with one value")),
                }
            } else {
                value.as_bytes().to_vec()
            };
            // Written back as one quoted string, which holds at most 255 bytes; the quoted
            // form is held to that above (found by `fuzz/`: a longer unquoted value came out
            // as content that did not parse again).
            if value.len() > 255 {
                return Err(wrong("`flags tag value` with a value of at most 255 bytes"));
            }
            Ok(format!(
                "{flags} {} {}",
                tag.to_ascii_lowercase(),
                quote(&value)
            ))
        }
    }
}

/// An absolute host name with its final dot, or None if `text` is not a host name.
fn target(text: &str) -> Option<String> {
    text.parse::<DomainName>()
        .ok()
        .map(|name| format!("{name}."))
}

/// Like [`target`], also accepting `.` (the root: "no service", RFC 7505 null MX, RFC 2782).
fn target_or_root(text: &str) -> Option<String> {
    if text == "." {
        Some(".".into())
    } else {
        target(text)
    }
}

/// Puts bytes in a DNS quoted string: `"` and `\` escaped, bytes outside printable ASCII as
/// `\DDD`.
pub fn quote(bytes: &[u8]) -> String {
    let mut quoted = String::with_capacity(bytes.len() + 2);
    quoted.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                quoted.push('\\');
                quoted.push(char::from(byte));
            }
            0x20..=0x7e => quoted.push(char::from(byte)),
            _ => quoted.push_str(&format!("\\{byte:03}")),
        }
    }
    quoted.push('"');
    quoted
}

/// Parses a sequence of DNS quoted strings (`"a" "b\"c" "\255"`) into their bytes, each at most
/// 255 bytes long.
fn parse_quoted_strings(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut strings = Vec::new();
    let mut bytes = text.bytes().peekable();
    loop {
        while bytes.next_if(u8::is_ascii_whitespace).is_some() {}
        match bytes.next() {
            None => break,
            Some(b'"') => {}
            Some(_) => return Err("text outside quotes".into()),
        }
        let mut current = Vec::new();
        loop {
            match bytes.next() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    let escaped = bytes.next().ok_or("unterminated escape")?;
                    if escaped.is_ascii_digit() {
                        let digits = [Some(escaped), bytes.next(), bytes.next()];
                        let [Some(a), Some(b), Some(c)] = digits else {
                            return Err("a \\DDD escape needs three digits".into());
                        };
                        let value = [a, b, c]
                            .iter()
                            .try_fold(0u16, |acc, d| {
                                d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
                            })
                            .and_then(|v| u8::try_from(v).ok())
                            .ok_or("a \\DDD escape must be 000 to 255")?;
                        current.push(value);
                    } else {
                        current.push(escaped);
                    }
                }
                Some(byte) => current.push(byte),
            }
        }
        if current.len() > 255 {
            return Err(
                "a string is longer than 255 bytes; split it into several quoted strings".into(),
            );
        }
        strings.push(current);
        if bytes.peek().is_some_and(|b| !b.is_ascii_whitespace()) {
            return Err("quoted strings must be separated by spaces".into());
        }
    }
    if strings.is_empty() {
        return Err("no quoted string".into());
    }
    Ok(strings)
}

/// Resolves a record owner name as an admin writes it, relative to `zone`:
/// `@` is the apex; a name ending in `.` is absolute; a name that already ends with the zone
/// is taken as written; anything else is relative to the zone. A leading `*` label makes a
/// wildcard. The result (lower case, no final dot) must lie inside the zone.
pub fn resolve_owner_name(zone: &DomainName, name: &str) -> Result<String, String> {
    let absolute = if name == "@" {
        zone.to_string()
    } else if let Some(stripped) = name.strip_suffix('.') {
        stripped.to_ascii_lowercase()
    } else {
        let lower = name.to_ascii_lowercase();
        let zone = zone.as_str();
        if lower == zone || lower.ends_with(&format!(".{zone}")) {
            lower
        } else {
            format!("{lower}.{zone}")
        }
    };
    let (wildcard, rest) = match absolute.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, absolute.as_str()),
    };
    let parsed: DomainName = rest
        .parse()
        .map_err(|error| format!("invalid record name {name:?}: {error}"))?;
    if !parsed.is_within(zone) {
        return Err(format!("{name:?} is not inside zone {zone}"));
    }
    Ok(if wildcard {
        format!("*.{parsed}")
    } else {
        parsed.to_string()
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn normal(record_type: &str, content: &str) -> Result<String, String> {
        normalize_content(record_type.parse().unwrap(), content)
    }

    #[test]
    fn types_parse_in_any_case_and_unknown_ones_are_refused() {
        for known in StaticType::ALL {
            for text in [
                known.as_str().to_string(),
                known.as_str().to_ascii_lowercase(),
            ] {
                assert_eq!(text.parse::<StaticType>(), Ok(known));
            }
        }
        for unknown in ["", "SOA", "DS", "TYPE65", "A ", "AAAAA"] {
            assert!(unknown.parse::<StaticType>().is_err(), "{unknown:?}");
        }
        assert_eq!("soa".parse::<ServedType>(), Ok(ServedType::Soa));
        assert_eq!(
            "cname".parse::<ServedType>(),
            Ok(ServedType::Stored(StaticType::Cname))
        );
    }

    #[test]
    fn addresses_and_names_are_canonical() {
        assert_eq!(normal("a", "192.0.2.1").unwrap(), "192.0.2.1");
        assert!(normal("A", "2001:db8::1").is_err());
        assert!(normal("A", "192.0.2.01").is_err());
        assert_eq!(normal("AAAA", "2001:DB8:0::1").unwrap(), "2001:db8::1");
        assert_eq!(
            normal("CNAME", "Target.Example.NET").unwrap(),
            "target.example.net."
        );
        assert_eq!(
            normal("NS", "ns1.example.net.").unwrap(),
            "ns1.example.net."
        );
        assert!(normal("CNAME", "not a name").is_err());
    }

    #[test]
    fn mx_and_srv_carry_their_numbers() {
        assert_eq!(
            normal("MX", "10 Mail.Example.net").unwrap(),
            "10 mail.example.net."
        );
        assert_eq!(normal("MX", "0 .").unwrap(), "0 .");
        assert!(normal("MX", "mail.example.net").is_err());
        assert!(normal("MX", "70000 mail.example.net").is_err());
        assert_eq!(
            normal("SRV", "10 5 5060 sip.example.net").unwrap(),
            "10 5 5060 sip.example.net."
        );
        assert!(normal("SRV", "10 5 sip.example.net").is_err());
    }

    #[test]
    fn txt_is_quoted_escaped_and_split() {
        assert_eq!(normal("TXT", "hello world").unwrap(), "\"hello world\"");
        assert_eq!(normal("TXT", "\"hello world\"").unwrap(), "\"hello world\"");
        assert_eq!(
            normal("TXT", "say \"hi\" \\o/").unwrap(),
            "\"say \\\"hi\\\" \\\\o/\""
        );
        assert_eq!(
            normal("TXT", "\"a\"  \"b\\\"c\"").unwrap(),
            "\"a\" \"b\\\"c\""
        );
        assert_eq!(normal("TXT", "\"\\233t\\233\"").unwrap(), "\"\\233t\\233\"");
        assert_eq!(normal("TXT", "é").unwrap(), "\"\\195\\169\"");
        let long = "x".repeat(300);
        assert_eq!(
            normal("TXT", &long).unwrap(),
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
        assert!(normal("TXT", &format!("\"{long}\"")).is_err());
        assert!(normal("TXT", "\"unterminated").is_err());
        assert!(normal("TXT", "\"a\"b").is_err());
        assert!(normal("TXT", "\"\\999\"").is_err());
    }

    #[test]
    fn caa_quotes_its_value() {
        assert_eq!(
            normal("CAA", "0 issue letsencrypt.org").unwrap(),
            "0 issue \"letsencrypt.org\""
        );
        assert_eq!(
            normal("CAA", "128 ISSUE \"ca.example\"").unwrap(),
            "128 issue \"ca.example\""
        );
        assert!(normal("CAA", "0 issue").is_err());
        assert!(normal("CAA", "300 issue x").is_err());
        assert!(normal("CAA", "0 is-sue x").is_err());
        // What comes out parses again to itself, non-ASCII bytes and the length limit too.
        let accented = normal("CAA", "0 iodef mailto:sécurité@example.com").unwrap();
        assert_eq!(normal("CAA", &accented).unwrap(), accented);
        let long = format!("0 issue {}", "é".repeat(128));
        assert!(normal("CAA", &long).is_err(), "256 bytes unquoted");
        assert!(normal("CAA", &format!("0 issue {}", "é".repeat(127))).is_ok());
    }

    #[test]
    fn unknown_types_are_refused() {
        assert!("HINFO".parse::<StaticType>().is_err());
        assert_eq!("caa".parse::<StaticType>(), Ok(StaticType::Caa));
        assert_eq!("ptr".parse::<StaticType>(), Ok(StaticType::Ptr));
    }

    #[test]
    fn ptr_and_dhcid_contents_take_their_canonical_forms() {
        let normal = |t: StaticType, c: &str| normalize_content(t, c);
        assert_eq!(
            normal(StaticType::Ptr, "Printer.Lab.Example").unwrap(),
            "printer.lab.example."
        );
        // Identifier type 2, digest type 1, a SHA-256 digest (RFC 4701 §3.3).
        let mut rdata = vec![0, 2, 1];
        rdata.extend([0xab; 32]);
        let dhcid = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &rdata);
        assert_eq!(normal(StaticType::Dhcid, &dhcid).unwrap(), dhcid);
        // Spaces inside the base64 are taken (the presentation format allows them).
        let spaced = format!("{} {}", &dhcid[..20], &dhcid[20..]);
        assert_eq!(normal(StaticType::Dhcid, &spaced).unwrap(), dhcid);
        assert!(normal(StaticType::Dhcid, "not base64!").is_err());
        assert!(
            normal(StaticType::Dhcid, "AAE=").is_err(),
            "too short for a digest"
        );
    }

    #[test]
    fn owner_names_resolve_against_the_zone() {
        let zone: DomainName = "dyn.example".parse().unwrap();
        let resolve = |name: &str| resolve_owner_name(&zone, name);
        assert_eq!(resolve("@").unwrap(), "dyn.example");
        assert_eq!(resolve("ns1").unwrap(), "ns1.dyn.example");
        assert_eq!(resolve("NS1.dyn.example").unwrap(), "ns1.dyn.example");
        assert_eq!(resolve("ns1.dyn.example.").unwrap(), "ns1.dyn.example");
        assert_eq!(resolve("*").unwrap(), "*.dyn.example");
        assert_eq!(resolve("*.sub").unwrap(), "*.sub.dyn.example");
        assert!(resolve("other.example.").is_err());
        assert!(resolve("a*b").is_err());
        assert!(resolve("sub.*").is_err());
    }
}
