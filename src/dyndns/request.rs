//! Turning the parts of an HTTP request into an [`UpdateRequest`]: credentials, parameters and
//! the client's address. Pure: no store, no hyper types (the HTTP adapter hands over bytes and
//! strings).

use super::address::{AddressParameter, AddressPlan, plan_addresses};
use crate::auth::{Credentials, header_credentials};
use crate::model::PrefixUpdate;
use crate::model::{AuthMethod, DomainName, IpError, PrefixError};

/// Which family of endpoint was called: they differ only in the credentials they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/domains/update`: Basic and query parameters only (no Bearer), per the product spec.
    Basic,
    /// `/nic/update` and its aliases: Bearer, Basic and query parameters.
    Nic,
}

/// Most hostnames one request may name (Dyn's limit); more is `numhost`.
pub const MAX_HOSTNAMES: usize = 20;

/// Everything the update logic needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// `hostname` as sent (trimmed): one FQDN or a comma-separated list.
    pub hostnames: Option<String>,
    /// The non-empty address parameters, in request order.
    pub addresses: Vec<(AddressParameter, String)>,
    /// The non-empty prefix parameters (`ip6lanprefix`, `ipv6prefix`, and `myipv6`/`ipv6`
    /// holding a `/`), by name, in request order.
    pub prefixes: Vec<(&'static str, String)>,
    /// `txt`: an ACME challenge value for the hosts (Duck DNS style), if sent.
    pub txt: Option<String>,
    /// `clear=true`: remove the hosts' challenge values instead.
    pub clear: bool,
    /// The credentials, if any method was present.
    pub credentials: Option<Credentials>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

/// What a request asks of the hosts' ACME challenge values (`txt=`, `clear=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtChange {
    /// Serve this value at `_acme-challenge.<host>`.
    Present(String),
    /// Remove every value there.
    Clear,
}

/// A request that asks two things that cannot both be done as asked: refused whole (400),
/// rather than half understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguity {
    /// `txt=` or `clear=true` with an address or prefix: ACME values and addresses are
    /// separate requests (one would otherwise be ignored).
    #[error(
        "txt= and clear=true change ACME values, not addresses: send the address (myip, ipv6, \
         a prefix) in a request of its own"
    )]
    TxtWithAddress,
    /// Two prefix parameters (`ip6lanprefix`, `ipv6prefix`, `myipv6=…/len`) that differ.
    #[error("the request carries different IPv6 prefixes: send one")]
    PrefixesDiffer,
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
    /// The IPv6 prefix sent, if any (the first prefix parameter).
    pub prefix: Result<Option<PrefixUpdate>, PrefixError>,
    /// A change of the hosts' ACME challenge values, instead of their addresses.
    pub txt: Option<TxtChange>,
    /// What the request asks that cannot be done as asked; nothing else of it is used then.
    pub ambiguity: Option<Ambiguity>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

impl UpdateRequest {
    /// Parses the host list and the addresses.
    pub fn parse(self) -> ParsedUpdate {
        let (prefix, prefixes_differ) = parse_prefixes(&self.prefixes);
        // `txt=` with `clear=true` is Duck DNS's own form (clear wins), not an ambiguity.
        let ambiguity = if (self.txt.is_some() || self.clear)
            && !(self.addresses.is_empty() && self.prefixes.is_empty())
        {
            Some(Ambiguity::TxtWithAddress)
        } else if prefixes_differ {
            Some(Ambiguity::PrefixesDiffer)
        } else {
            None
        };
        ParsedUpdate {
            hosts: parse_hosts(self.hostnames.as_deref()),
            addresses: plan_addresses(&self.addresses),
            prefix,
            txt: if self.clear {
                Some(TxtChange::Clear)
            } else {
                self.txt.map(TxtChange::Present)
            },
            ambiguity,
            credentials: self.credentials,
            user_agent: self.user_agent,
        }
    }
}

/// The prefix parameters: the first one's prefix (or the first error among them), and whether
/// two of them name different prefixes.
fn parse_prefixes(
    prefixes: &[(&'static str, String)],
) -> (Result<Option<PrefixUpdate>, PrefixError>, bool) {
    let mut first: Option<PrefixUpdate> = None;
    let mut differ = false;
    for (parameter, value) in prefixes {
        match value.parse() {
            Err(error) => return (Err(error), false),
            Ok(prefix) => match &first {
                None => first = Some(PrefixUpdate { prefix, parameter }),
                Some(seen) => differ |= seen.prefix != prefix,
            },
        }
    }
    (Ok(first), differ)
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
    let mut prefixes = Vec::new();
    let mut username = None;
    let mut password = None;
    let mut txt = None;
    let mut clear = None;
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(form_body.unwrap_or_default()));
    for (name, value) in pairs {
        // A prefix: the FRITZ!Box's `<ip6lanprefix>`, dynv6's `ipv6prefix`, or deSEC's
        // `myipv6=2001:db8::/64` (an address never holds a `/`).
        let prefix_parameter = match name.as_ref() {
            "ip6lanprefix" => Some("ip6lanprefix"),
            "ipv6prefix" => Some("ipv6prefix"),
            "myipv6" if value.contains('/') => Some("myipv6"),
            "ipv6" if value.contains('/') => Some("ipv6"),
            _ => None,
        };
        if let Some(parameter) = prefix_parameter {
            if !value.trim().is_empty() {
                prefixes.push((parameter, value.trim().to_string()));
            }
            continue;
        }
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
            "txt" => &mut txt,
            "clear" => &mut clear,
            // Legacy and unsupported parameters (system, wildcard, mx, backmx, offline...) are
            // ignored, as clients send them by default.
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }

    let credentials = header_credentials(authorization, endpoint == Endpoint::Nic).or(
        match (username, password) {
            (Some(login), Some(password)) => Some(Credentials::Password {
                method: AuthMethod::Query,
                login,
                password,
            }),
            (None, None) => None,
            _ => Some(Credentials::Malformed),
        },
    );

    UpdateRequest {
        hostnames: hostname
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty()),
        addresses,
        prefixes,
        txt: txt.filter(|value| !value.is_empty()),
        clear: clear.is_some_and(|value| {
            ["true", "1", "yes"]
                .iter()
                .any(|yes| value.eq_ignore_ascii_case(yes))
        }),
        credentials,
        user_agent: user_agent.map(str::to_string),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use base64::Engine as _;

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
    fn prefixes_come_in_three_parameters_and_an_address_is_not_one() {
        let fritz = parse(
            Endpoint::Nic,
            None,
            "myip=192.0.2.1&myipv6=2001:db8::1&ip6lanprefix=2001%3Adb8%3A1234%3A5600%3A%3A%2F56",
        );
        assert_eq!(
            fritz.addresses,
            [
                (AddressParameter::MyIp, "192.0.2.1".to_string()),
                (AddressParameter::Ipv6, "2001:db8::1".to_string())
            ]
        );
        assert_eq!(
            fritz.prefixes,
            [("ip6lanprefix", "2001:db8:1234:5600::/56".to_string())]
        );
        let parsed = fritz.parse().prefix.unwrap().unwrap();
        assert_eq!(
            (parsed.prefix.to_string(), parsed.parameter),
            ("2001:db8:1234:5600::/56".to_string(), "ip6lanprefix")
        );
        // deSEC's form: a `/` makes `myipv6` a prefix, not an address.
        let desec = parse(
            Endpoint::Nic,
            None,
            "myipv6=2001:db8::/64&ipv6prefix=2001:db8:9::/48",
        );
        assert!(desec.addresses.is_empty());
        assert_eq!(desec.parse().prefix.unwrap().unwrap().parameter, "myipv6");
        // A prefix parameter without a length is refused, not taken for an address.
        let bare = parse(Endpoint::Nic, None, "ip6lanprefix=2001:db8::");
        assert_eq!(bare.parse().prefix, Err(PrefixError::MissingLength));
        assert_eq!(parse(Endpoint::Nic, None, "ip6lanprefix=").prefixes, []);
    }
}
