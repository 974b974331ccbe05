//! Turning the parts of an HTTP request into an [`UpdateRequest`]: credentials, parameters and
//! the client's address. Pure: no store, no hyper types (the HTTP adapter hands over bytes and
//! strings).

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use ipnet::IpNet;

use crate::model::{AuthMethod, DomainName, IpError, parse_ip};

/// Which family of endpoint was called: they differ only in the credentials they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/domains/update`: Basic and query parameters only (no Bearer), per the product spec.
    Basic,
    /// `/nic/update` and its aliases: Bearer, Basic and query parameters.
    Nic,
}

/// The credentials a request carries, by the first method present.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <key>`.
    Bearer(String),
    /// A login (username or email) and a password or API key, from Basic or the parameters.
    Password {
        /// Where they came from.
        method: AuthMethod,
        /// Username or email.
        login: String,
        /// Account password or API key.
        password: String,
    },
    /// An authorization that is present but unusable (bad base64, no colon, a username without
    /// a password...). Always `badauth`.
    Malformed,
}

impl std::fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Password { method, login, .. } => {
                write!(
                    f,
                    "Password {{ method: {method}, login: {login:?}, password: <redacted> }}"
                )
            }
            Self::Malformed => f.write_str("Malformed"),
        }
    }
}

/// Most hostnames one request may name (Dyn's limit); more is `numhost`.
pub const MAX_HOSTNAMES: usize = 20;

/// The request parameters that carry addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressParameter {
    /// `myip`: one address of either family, or `v4,v6` (Dyn, No-IP, ddclient >= 3.11).
    MyIp,
    /// `ip`: as `myip` (deSEC, dynv6).
    Ip,
    /// `myipv4` or `ipv4`: the IPv4 address (deSEC, dynu, OpenWRT templates).
    Ipv4,
    /// `myipv6` or `ipv6`: the IPv6 address.
    Ipv6,
}

/// Everything the update logic needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// `hostname` as sent (trimmed): one FQDN or a comma-separated list.
    pub hostnames: Option<String>,
    /// The non-empty address parameters, in request order.
    pub addresses: Vec<(AddressParameter, String)>,
    /// The credentials, if any method was present.
    pub credentials: Option<Credentials>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

/// Why a request's host list cannot be used at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostListError {
    /// No `hostname`, or only empty items: `notfqdn`.
    Missing,
    /// More than [`MAX_HOSTNAMES`]: `numhost`.
    TooMany,
}

/// An update request parsed through: nothing in it is text still to be interpreted. Each
/// part keeps its own error, so that the update logic can answer them in the protocol's
/// order (credentials first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// The credentials, if any method was present.
    pub credentials: Option<Credentials>,
    /// The hosts in request order, `None` for an item that is not a valid name (`notfqdn`
    /// for that host alone).
    pub hosts: Result<Vec<Option<DomainName>>, HostListError>,
    /// The addresses asked for.
    pub addresses: Result<AddressPlan, IpError>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

impl UpdateRequest {
    /// Parses the host list and the addresses.
    pub fn parse(self) -> ParsedUpdate {
        ParsedUpdate {
            hosts: parse_hosts(self.hostnames.as_deref()),
            addresses: plan_addresses(&self.addresses),
            credentials: self.credentials,
            user_agent: self.user_agent,
        }
    }
}

/// The `hostname` list: comma-separated, items trimmed.
fn parse_hosts(list: Option<&str>) -> Result<Vec<Option<DomainName>>, HostListError> {
    let list = list.ok_or(HostListError::Missing)?;
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    if names.iter().all(|name| name.is_empty()) {
        return Err(HostListError::Missing);
    }
    if names.len() > MAX_HOSTNAMES {
        return Err(HostListError::TooMany);
    }
    Ok(names.iter().map(|name| name.parse().ok()).collect())
}

/// Builds an [`UpdateRequest`].
///
/// Parameters come from the query string and then the form body; the first occurrence of a
/// name wins. Credentials: Bearer (not on [`Endpoint::Basic`]), then Basic, then the
/// `username`/`password` parameters: the first one present decides, even if it then fails.
/// An `Authorization` header of another scheme is ignored.
pub fn parse_update_request(
    endpoint: Endpoint,
    authorization: Option<&[u8]>,
    query: Option<&str>,
    form_body: Option<&[u8]>,
    user_agent: Option<&str>,
) -> UpdateRequest {
    let mut hostname = None;
    let mut addresses = Vec::new();
    let mut username = None;
    let mut password = None;
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(form_body.unwrap_or_default()));
    for (name, value) in pairs {
        let address_parameter = match name.as_ref() {
            "myip" => Some(AddressParameter::MyIp),
            "ip" => Some(AddressParameter::Ip),
            "myipv4" | "ipv4" => Some(AddressParameter::Ipv4),
            "myipv6" | "ipv6" => Some(AddressParameter::Ipv6),
            _ => None,
        };
        if let Some(parameter) = address_parameter {
            if !value.is_empty() {
                addresses.push((parameter, value.into_owned()));
            }
            continue;
        }
        let slot = match name.as_ref() {
            "hostname" => &mut hostname,
            "username" => &mut username,
            "password" => &mut password,
            // Legacy and unsupported parameters (system, wildcard, mx, backmx, offline...) are
            // ignored, as clients send them by default.
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }

    let credentials = header_credentials(endpoint, authorization).or(match (username, password) {
        (Some(login), Some(password)) => Some(Credentials::Password {
            method: AuthMethod::Query,
            login,
            password,
        }),
        (None, None) => None,
        _ => Some(Credentials::Malformed),
    });

    UpdateRequest {
        hostnames: hostname
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty()),
        addresses,
        credentials,
        user_agent: user_agent.map(str::to_string),
    }
}

/// What to do with one address family of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Point the record at this address.
    Set(IpAddr),
    /// Leave the record as it is (`preserve`).
    Preserve,
}

/// The addresses a request asks for, by family, and the order the client gave them in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPlan {
    /// The IPv4 target, if any.
    pub v4: Option<Target>,
    /// The IPv6 target, if any.
    pub v6: Option<Target>,
    /// Families in the order they first appeared (`true` for IPv6).
    pub order: Vec<bool>,
}

impl AddressPlan {
    /// The plan for a detected client address.
    pub fn detected(ip: IpAddr) -> Self {
        let mut plan = Self::default();
        plan.put(ip.is_ipv6(), Target::Set(ip));
        plan
    }

    /// The addresses to set, in the client's order.
    pub fn to_set(&self) -> Vec<IpAddr> {
        self.order
            .iter()
            .filter_map(|&is_v6| match if is_v6 { self.v6 } else { self.v4 } {
                Some(Target::Set(ip)) => Some(ip),
                _ => None,
            })
            .collect()
    }

    /// Sets the target of a family unless one is set already (the first one wins).
    fn put(&mut self, is_v6: bool, target: Target) {
        let slot = if is_v6 { &mut self.v6 } else { &mut self.v4 };
        if slot.is_none() {
            *slot = Some(target);
            self.order.push(is_v6);
        }
    }
}

/// Turns the address parameters into a plan, strictly: every value must parse (or be
/// `preserve`); `myipv4`/`myipv6` must hold their family; `myip` and `ip` take one address or
/// a `v4,v6` pair. Family-specific parameters win over `myip`/`ip`.
pub fn plan_addresses(parameters: &[(AddressParameter, String)]) -> Result<AddressPlan, IpError> {
    let mut plan = AddressPlan::default();
    let is_preserve = |value: &str| value.eq_ignore_ascii_case("preserve");
    for (parameter, value) in parameters {
        let is_v6 = match parameter {
            AddressParameter::Ipv4 => false,
            AddressParameter::Ipv6 => true,
            AddressParameter::MyIp | AddressParameter::Ip => continue,
        };
        if is_preserve(value) {
            plan.put(is_v6, Target::Preserve);
            continue;
        }
        let ip = parse_ip(value)?.to_canonical();
        match (is_v6, ip) {
            (false, IpAddr::V6(_)) => return Err(IpError::Ipv4Required),
            (true, IpAddr::V4(_)) => return Err(IpError::Ipv6Required),
            _ => plan.put(is_v6, Target::Set(ip)),
        }
    }
    for (parameter, value) in parameters {
        if !matches!(parameter, AddressParameter::MyIp | AddressParameter::Ip) || is_preserve(value)
        {
            continue;
        }
        let mut seen = (false, false);
        for item in value.split(',') {
            let ip = parse_ip(item)?.to_canonical();
            let family_seen = if ip.is_ipv6() {
                &mut seen.1
            } else {
                &mut seen.0
            };
            if std::mem::replace(family_seen, true) {
                // Two addresses of one family: a record holds one.
                return Err(IpError::Invalid);
            }
            plan.put(ip.is_ipv6(), Target::Set(ip));
        }
    }
    Ok(plan)
}

/// Base64 as browsers and routers send it: standard alphabet, padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Credentials from the `Authorization` header, if it holds a scheme we take here.
fn header_credentials(endpoint: Endpoint, authorization: Option<&[u8]>) -> Option<Credentials> {
    let header = std::str::from_utf8(authorization?).ok()?.trim();
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && endpoint == Endpoint::Nic {
        return Some(if value.is_empty() {
            Credentials::Malformed
        } else {
            Credentials::Bearer(value.to_string())
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = LENIENT_BASE64
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    // Split at the first colon only: passwords may contain colons, usernames may not.
    Some(
        match decoded.as_deref().and_then(|text| text.split_once(':')) {
            Some((login, password)) if !login.is_empty() => Credentials::Password {
                method: AuthMethod::Basic,
                login: login.to_string(),
                password: password.to_string(),
            },
            _ => Credentials::Malformed,
        },
    )
}

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

    fn basic(login_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(login_password)
        )
        .into_bytes()
    }

    fn parse(endpoint: Endpoint, authorization: Option<&[u8]>, query: &str) -> UpdateRequest {
        parse_update_request(endpoint, authorization, Some(query), None, None)
    }

    #[test]
    fn parameters_come_from_query_then_body() {
        let request = parse_update_request(
            Endpoint::Nic,
            None,
            Some("hostname=Home.Dyn.Example&system=dyndns&wildcard=NOCHG"),
            Some(b"myip=192.0.2.1&hostname=ignored.example"),
            Some("ddclient/3.10"),
        );
        assert_eq!(request.hostnames.as_deref(), Some("Home.Dyn.Example"));
        assert_eq!(
            request.addresses,
            [(AddressParameter::MyIp, "192.0.2.1".to_string())]
        );
        assert_eq!(request.credentials, None);
        assert_eq!(request.user_agent.as_deref(), Some("ddclient/3.10"));
    }

    #[test]
    fn empty_myip_and_hostname_count_as_absent() {
        let request = parse(Endpoint::Nic, None, "hostname=%20&myip=");
        assert_eq!(request.hostnames, None);
        assert_eq!(request.addresses, []);
    }

    fn plan(query: &str) -> Result<AddressPlan, IpError> {
        plan_addresses(&parse(Endpoint::Nic, None, query).addresses)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn address_forms_clients_send() {
        let v4 = plan("myip=192.0.2.1").unwrap();
        assert_eq!((v4.v4, v4.v6), (Some(Target::Set(ip("192.0.2.1"))), None));
        let raw_v6 = plan("myip=2001:db8::1").unwrap();
        assert_eq!(raw_v6.v6, Some(Target::Set(ip("2001:db8::1"))));
        let encoded_v6 = plan("myip=2001%3adb8%3a%3a1").unwrap();
        assert_eq!(encoded_v6.v6, Some(Target::Set(ip("2001:db8::1"))));
        let pair = plan("myip=192.0.2.1,2001:db8::1").unwrap();
        assert_eq!(pair.to_set(), [ip("192.0.2.1"), ip("2001:db8::1")]);
        let reversed = plan("myip=2001:db8::1,192.0.2.1").unwrap();
        assert_eq!(
            reversed.to_set(),
            [ip("2001:db8::1"), ip("192.0.2.1")],
            "the client's order"
        );
        for query in [
            "myipv4=192.0.2.1&myipv6=2001:db8::1",
            "ipv4=192.0.2.1&ipv6=2001:db8::1",
            "ip=192.0.2.1,2001:db8::1",
        ] {
            assert_eq!(
                plan(query).unwrap().to_set(),
                [ip("192.0.2.1"), ip("2001:db8::1")],
                "{query}"
            );
        }
    }

    #[test]
    fn preserve_and_absent_families_are_left_alone() {
        let only_v6 = plan("myipv4=preserve&myipv6=2001:db8::1").unwrap();
        assert_eq!(only_v6.v4, Some(Target::Preserve));
        assert_eq!(only_v6.to_set(), [ip("2001:db8::1")]);
        assert_ne!(only_v6, AddressPlan::default());
        assert_eq!(plan("system=dyndns").unwrap(), AddressPlan::default());
        assert!(
            plan("myip=").unwrap() == AddressPlan::default(),
            "ddclient 3.10 sends an empty myip for IPv6"
        );
        assert_eq!(
            AddressPlan::detected(ip("192.0.2.9")).to_set(),
            [ip("192.0.2.9")]
        );
    }

    #[test]
    fn family_parameters_win_over_myip() {
        let plan = plan("myip=192.0.2.1&myipv4=198.51.100.1").unwrap();
        assert_eq!(plan.v4, Some(Target::Set(ip("198.51.100.1"))));
    }

    #[test]
    fn bad_address_forms_are_refused() {
        assert_eq!(plan("myip=1.2.3"), Err(IpError::Invalid));
        assert_eq!(plan("myip=192.0.2.1,192.0.2.2"), Err(IpError::Invalid));
        assert_eq!(plan("myip=192.0.2.1,"), Err(IpError::Invalid));
        assert_eq!(
            plan("myip=192.0.2.1%2C%202001:db8::1"),
            Err(IpError::Invalid)
        );
        assert_eq!(plan("myipv4=2001:db8::1"), Err(IpError::Ipv4Required));
        assert_eq!(plan("myipv6=192.0.2.1"), Err(IpError::Ipv6Required));
        assert_eq!(plan("ipv6=bogus"), Err(IpError::Invalid));
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        let request = parse(
            Endpoint::Nic,
            None,
            "username=alice&password=p%3Ass%26w%2Brd&myip=2001%3adb8%3A%3A1",
        );
        assert_eq!(
            request.credentials,
            Some(Credentials::Password {
                method: AuthMethod::Query,
                login: "alice".into(),
                password: "p:ss&w+rd".into()
            })
        );
        assert_eq!(
            request.addresses,
            [(AddressParameter::MyIp, "2001:db8::1".to_string())]
        );
    }

    #[test]
    fn basic_splits_at_the_first_colon() {
        let header = basic("alice@example.com:pa:ss:word");
        let request = parse(Endpoint::Nic, Some(&header), "");
        assert_eq!(
            request.credentials,
            Some(Credentials::Password {
                method: AuthMethod::Basic,
                login: "alice@example.com".into(),
                password: "pa:ss:word".into()
            })
        );
    }

    #[test]
    fn basic_without_padding_is_accepted() {
        let header = b"basic YWxpY2U6cHc"; // "alice:pw", padding dropped, scheme lower case
        let request = parse(Endpoint::Nic, Some(header), "");
        assert!(
            matches!(request.credentials, Some(Credentials::Password { ref password, .. }) if password == "pw")
        );
    }

    #[test]
    fn the_first_method_present_decides() {
        let bearer = b"Bearer ak_secret".as_slice();
        let request = parse(Endpoint::Nic, Some(bearer), "username=alice&password=pw");
        assert_eq!(
            request.credentials,
            Some(Credentials::Bearer("ak_secret".into()))
        );

        let broken_basic = b"Basic !!!notbase64".as_slice();
        let request = parse(
            Endpoint::Nic,
            Some(broken_basic),
            "username=alice&password=pw",
        );
        assert_eq!(request.credentials, Some(Credentials::Malformed));

        let no_colon = basic("alice");
        assert_eq!(
            parse(Endpoint::Nic, Some(&no_colon), "").credentials,
            Some(Credentials::Malformed)
        );
    }

    #[test]
    fn bearer_is_not_taken_on_the_basic_endpoint() {
        let bearer = b"Bearer ak_secret".as_slice();
        assert_eq!(parse(Endpoint::Basic, Some(bearer), "").credentials, None);
        let request = parse(Endpoint::Basic, Some(bearer), "username=alice&password=pw");
        assert!(matches!(
            request.credentials,
            Some(Credentials::Password {
                method: AuthMethod::Query,
                ..
            })
        ));
    }

    #[test]
    fn other_schemes_are_ignored_and_half_parameters_are_malformed() {
        let digest = b"Digest username=\"alice\"".as_slice();
        assert_eq!(parse(Endpoint::Nic, Some(digest), "").credentials, None);
        assert_eq!(
            parse(Endpoint::Nic, None, "username=alice").credentials,
            Some(Credentials::Malformed)
        );
        assert_eq!(
            parse(Endpoint::Nic, Some(b"Bearer "), "").credentials,
            Some(Credentials::Malformed)
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let text = format!(
            "{:?} {:?}",
            Credentials::Bearer("ak_topsecret".into()),
            Credentials::Password {
                method: AuthMethod::Basic,
                login: "alice".into(),
                password: "hunter2".into()
            }
        );
        assert!(
            !text.contains("topsecret") && !text.contains("hunter2"),
            "{text}"
        );
    }

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
