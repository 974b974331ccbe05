//! The dyndns2 answer codes, their wire text and HTTP status.
//!
//! This is the one place where a token such as `badauth` is spelled and where its status is
//! chosen. Depends on nothing in the crate but [`crate::model::IpError`] and
//! [`crate::model::PrefixError`] for the 400 reasons.

use std::fmt;
use std::net::IpAddr;

use crate::model::{IpError, PrefixError};

/// The addresses `good` and `nochg` echo: `192.0.2.1`, or `192.0.2.1,2001:db8::1` in the
/// order the client gave them; none when both families were left as they are (`preserve`) and
/// the host has no address yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressList {
    /// The first address.
    first: Option<IpAddr>,
    /// The second, for a dual-stack update.
    second: Option<IpAddr>,
}

impl AddressList {
    /// A single address.
    pub fn one(ip: IpAddr) -> Self {
        Self {
            first: Some(ip),
            second: None,
        }
    }

    /// The list of `ips`: at most two (one per family), or None.
    pub fn of(ips: &[IpAddr]) -> Option<Self> {
        match ips {
            [] => Some(Self::default()),
            [first] => Some(Self::one(*first)),
            [first, second] => Some(Self {
                first: Some(*first),
                second: Some(*second),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for AddressList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first, self.second) {
            (Some(first), Some(second)) => write!(f, "{first},{second}"),
            (Some(first), None) => write!(f, "{first}"),
            _ => Ok(()),
        }
    }
}

/// The outcome of an update for one host (or for the whole request, for the codes that
/// concern the account or the system), as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnCode {
    /// The addresses changed to these.
    Good(AddressList),
    /// The addresses were already these; nothing changed. A success.
    Nochg(AddressList),
    /// Missing, malformed or wrong credentials, inactive key or user, key not allowed.
    Badauth,
    /// Credentials not checked: the client or the account is throttled after repeated
    /// failures, for this many more seconds. `badauth` on the wire (what dyndns2 clients
    /// know); the account holder's pages say what it is (it tells nothing: unknown logins are
    /// throttled alike).
    Throttled(u64),
    /// The hostname is missing or not a valid FQDN.
    Notfqdn,
    /// The hostname is not a domain of the authenticated user (or does not exist: the two are
    /// not told apart).
    Nohost,
    /// More than 20 hostnames in one request.
    Numhost,
    /// Updates for this hostname come faster than allowed; it is cooling down.
    Abuse,
    /// An address is malformed or of the wrong family.
    BadAddress(IpError),
    /// An IPv6 prefix is malformed, has no length, or does not fit a host it is for; nothing
    /// changed.
    BadPrefix(PrefixError),
    /// A `txt=` value that cannot be an ACME challenge value (or ACME values are off).
    BadTxt,
    /// The request asks two things that cannot both be done as asked; nothing changed.
    Ambiguous(super::request::Ambiguity),
    /// ACME values for this host are refused: it is a zone apex, or another account holds a
    /// name at, above or beneath it (one name, one owner). 403; the body does not say whose.
    Disputed,
    /// The store could not be read or written; nothing changed.
    Dnserr,
    /// Too many password checks are waiting; nothing was checked or changed. Retry later
    /// (ddclient and inadyn both do, on `911` with 503).
    Busy,
}

impl ReturnCode {
    /// The HTTP status, per the product spec (§8); 429 for `abuse`, which the spec leaves open.
    pub fn status(self) -> u16 {
        match self {
            Self::Good(_) | Self::Nochg(_) => 200,
            Self::Notfqdn
            | Self::Numhost
            | Self::BadAddress(_)
            | Self::BadPrefix(_)
            | Self::BadTxt
            | Self::Ambiguous(_) => 400,
            Self::Badauth | Self::Throttled(_) => 401,
            Self::Nohost => 404,
            Self::Disputed => 403,
            Self::Abuse => 429,
            Self::Dnserr => 500,
            Self::Busy => 503,
        }
    }

    /// Whether the client should count this as success.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Good(_) | Self::Nochg(_))
    }

    /// The body line, without a newline: `good 192.0.2.1`, `badauth`, `invalid IP address`...
    pub fn body(self) -> String {
        match self {
            Self::Good(ips) => format!("good {ips}").trim_end().to_string(),
            Self::Nochg(ips) => format!("nochg {ips}").trim_end().to_string(),
            Self::BadAddress(error) => error.to_string(),
            Self::BadPrefix(error) => error.to_string(),
            Self::Ambiguous(why) => why.to_string(),
            Self::BadTxt => {
                "invalid txt: an ACME challenge value is 1 to 255 base64url characters".into()
            }
            Self::Disputed => crate::challenges::DISPUTED.into(),
            other => other.label().to_string(),
        }
    }

    /// A short stable label for logs (the wire token, or `badaddress`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Good(_) => "good",
            Self::Nochg(_) => "nochg",
            Self::Badauth | Self::Throttled(_) => "badauth",
            Self::Notfqdn => "notfqdn",
            Self::Nohost => "nohost",
            Self::Numhost => "numhost",
            Self::Abuse => "abuse",
            Self::BadAddress(_) => "badaddress",
            Self::BadPrefix(_) => "badprefix",
            Self::BadTxt => "badtxt",
            Self::Ambiguous(_) => "ambiguous",
            Self::Disputed => "disputed",
            Self::Dnserr => "dnserr",
            Self::Busy => "911",
        }
    }
}

/// A whole answer: one code per requested host, in request order, or a single code for a
/// failure of the account or the system (given once, as Dyn specified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The lines, never empty.
    codes: Vec<ReturnCode>,
}

impl Answer {
    /// An answer of one code for the whole request.
    pub fn once(code: ReturnCode) -> Self {
        Self { codes: vec![code] }
    }

    /// An answer of one code per host; `codes` must not be empty.
    pub fn per_host(codes: Vec<ReturnCode>) -> Self {
        assert!(!codes.is_empty(), "an answer has at least one line");
        Self { codes }
    }

    /// The body: the lines joined by `\n`, no blank line, no trailing newline.
    pub fn body(&self) -> String {
        self.codes
            .iter()
            .map(|code| code.body())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The HTTP status: a single line keeps its own; several lines are 200 unless every host
    /// failed the same way, which then gives that failure's status.
    pub fn status(&self) -> u16 {
        let first = self.codes[0];
        let all_same_failure = !first.is_success()
            && self
                .codes
                .iter()
                .all(|code| code.label() == first.label() && code.status() == first.status());
        if self.codes.len() == 1 || all_same_failure {
            first.status()
        } else {
            200
        }
    }

    /// The lines' codes, in order.
    pub fn codes(&self) -> &[ReturnCode] {
        &self.codes
    }

    /// Whether this is a `badauth` (the HTTP layer adds a Basic challenge).
    pub fn is_badauth(&self) -> bool {
        matches!(
            self.codes.as_slice(),
            [ReturnCode::Badauth | ReturnCode::Throttled(_)]
        )
    }

    /// Whether every line is `nochg`.
    pub fn changes_nothing(&self) -> bool {
        self.codes
            .iter()
            .all(|code| matches!(code, ReturnCode::Nochg(_)))
    }

    /// The codes' labels, comma-separated, for the log.
    pub fn labels(&self) -> String {
        self.codes
            .iter()
            .map(|code| code.label())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn codes_map_to_body_and_status() {
        let v4 = AddressList::one(ip("192.0.2.1"));
        let both = AddressList::of(&[ip("192.0.2.1"), ip("2001:db8::1")]).unwrap();
        let cases = [
            (ReturnCode::Good(v4), 200, "good 192.0.2.1"),
            (ReturnCode::Good(both), 200, "good 192.0.2.1,2001:db8::1"),
            (ReturnCode::Nochg(v4), 200, "nochg 192.0.2.1"),
            (ReturnCode::Badauth, 401, "badauth"),
            (ReturnCode::Notfqdn, 400, "notfqdn"),
            (ReturnCode::Nohost, 404, "nohost"),
            (ReturnCode::Numhost, 400, "numhost"),
            (ReturnCode::Abuse, 429, "abuse"),
            (
                ReturnCode::BadAddress(IpError::Invalid),
                400,
                "invalid IP address",
            ),
            (
                ReturnCode::BadAddress(IpError::Ipv4Required),
                400,
                "IPv4 required for an A record",
            ),
            (
                ReturnCode::BadAddress(IpError::Ipv6Required),
                400,
                "IPv6 required for an AAAA record",
            ),
            (ReturnCode::Dnserr, 500, "dnserr"),
        ];
        for (code, status, body) in cases {
            assert_eq!(code.status(), status, "{code:?}");
            assert_eq!(code.body(), body, "{code:?}");
        }
        assert_eq!(
            ReturnCode::Nochg(AddressList::of(&[]).unwrap()).body(),
            "nochg"
        );
        assert_eq!(
            AddressList::of(&[ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")]),
            None
        );
    }

    #[test]
    fn several_hosts_answer_one_line_each_and_200_unless_all_failed_alike() {
        let good = ReturnCode::Good(AddressList::one(ip("192.0.2.1")));
        let mixed = Answer::per_host(vec![
            good,
            ReturnCode::Nohost,
            ReturnCode::Nochg(AddressList::one(ip("192.0.2.1"))),
        ]);
        assert_eq!(mixed.body(), "good 192.0.2.1\nnohost\nnochg 192.0.2.1");
        assert_eq!(mixed.status(), 200);
        assert_eq!(
            Answer::per_host(vec![ReturnCode::Nohost, ReturnCode::Nohost]).status(),
            404
        );
        assert_eq!(
            Answer::per_host(vec![ReturnCode::Nohost, ReturnCode::Notfqdn]).status(),
            200
        );
        let two_reasons = Answer::per_host(vec![
            ReturnCode::BadAddress(IpError::Ipv4Required),
            ReturnCode::BadAddress(IpError::Ipv6Required),
        ]);
        assert_eq!(two_reasons.status(), 400);
        assert_eq!(Answer::once(ReturnCode::Nohost).status(), 404);
        assert!(Answer::once(ReturnCode::Badauth).is_badauth());
    }
}
