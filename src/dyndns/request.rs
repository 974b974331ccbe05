//! Turning the parts of an HTTP request into an [`UpdateRequest`]: credentials, parameters and
//! the client's address. Pure: no store, no hyper types (the HTTP adapter hands over bytes and
//! strings).

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use ipnet::IpNet;

use crate::model::AuthMethod;

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

/// Everything the update logic needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// `hostname` as sent (trimmed), if any.
    pub hostname: Option<String>,
    /// `myip` as sent, if present and not empty.
    pub myip: Option<String>,
    /// The credentials, if any method was present.
    pub credentials: Option<Credentials>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
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
    let mut myip = None;
    let mut username = None;
    let mut password = None;
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(form_body.unwrap_or_default()));
    for (name, value) in pairs {
        let slot = match name.as_ref() {
            "hostname" => &mut hostname,
            "myip" => &mut myip,
            "username" => &mut username,
            "password" => &mut password,
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
        hostname: hostname
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty()),
        myip: myip.filter(|ip| !ip.is_empty()),
        credentials,
        user_agent: user_agent.map(str::to_string),
    }
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

/// Detects the client's address.
///
/// The first `X-Forwarded-For` entry is believed only when the TCP peer is a trusted proxy; an
/// entry that is not an address (or `unknown`) falls back to the peer. IPv4-mapped IPv6 peers
/// (`::ffff:192.0.2.1`, from a dual-stack socket) count as the IPv4 address they carry.
pub fn detect_client(
    peer: SocketAddr,
    forwarded_for: Option<&[u8]>,
    trusted: &[IpNet],
) -> ClientAddress {
    let peer = peer.ip().to_canonical();
    let forwarded = || {
        let header = std::str::from_utf8(forwarded_for?).ok()?;
        let first = header.split(',').next()?.trim();
        first.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    };
    let source = if trusted.iter().any(|net| net.contains(&peer)) {
        forwarded().unwrap_or(peer)
    } else {
        peer
    };
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
        assert_eq!(request.hostname.as_deref(), Some("Home.Dyn.Example"));
        assert_eq!(request.myip.as_deref(), Some("192.0.2.1"));
        assert_eq!(request.credentials, None);
        assert_eq!(request.user_agent.as_deref(), Some("ddclient/3.10"));
    }

    #[test]
    fn empty_myip_and_hostname_count_as_absent() {
        let request = parse(Endpoint::Nic, None, "hostname=%20&myip=");
        assert_eq!(request.hostname, None);
        assert_eq!(request.myip, None);
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
        assert_eq!(request.myip.as_deref(), Some("2001:db8::1"));
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
        let header = b"203.0.113.5, 10.0.0.1".as_slice();

        let via_proxy = detect_client(proxy, Some(header), &trusted);
        assert_eq!(via_proxy.source.to_string(), "203.0.113.5");
        assert_eq!(via_proxy.peer.to_string(), "127.0.0.1");

        let spoofed = detect_client(direct, Some(header), &trusted);
        assert_eq!(spoofed.source.to_string(), "198.51.100.9");

        let garbage = detect_client(proxy, Some(b"unknown"), &trusted);
        assert_eq!(garbage.source.to_string(), "127.0.0.1");
        assert_eq!(
            detect_client(proxy, None, &trusted).source.to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn ipv4_mapped_peers_count_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5000".parse().unwrap();
        let client = detect_client(mapped, None, &[]);
        assert_eq!(client.source.to_string(), "192.0.2.1");
        assert_eq!(client.peer.to_string(), "192.0.2.1");
    }
}
