//! The dyndns2 answer codes, their wire text and HTTP status.
//!
//! This is the one place where a token such as `badauth` is spelled and where its status is
//! chosen. Depends on nothing in the crate but [`crate::model::IpError`] for the 400 reasons.

use std::net::IpAddr;

use crate::model::IpError;

/// The outcome of an update for one host, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnCode {
    /// The address changed to this one.
    Good(IpAddr),
    /// The address was already this one; nothing changed. A success.
    Nochg(IpAddr),
    /// Missing, malformed or wrong credentials, inactive key or user, key not allowed.
    Badauth,
    /// The hostname is missing or not a valid FQDN.
    Notfqdn,
    /// The hostname is not a domain of the authenticated user (or does not exist: the two are
    /// not told apart).
    Nohost,
    /// The address is malformed or of the wrong family.
    BadAddress(IpError),
    /// The store could not be read or written; nothing changed.
    Dnserr,
}

impl ReturnCode {
    /// The HTTP status, per the product spec (§8).
    pub fn status(self) -> u16 {
        match self {
            Self::Good(_) | Self::Nochg(_) => 200,
            Self::Notfqdn | Self::BadAddress(_) => 400,
            Self::Badauth => 401,
            Self::Nohost => 404,
            Self::Dnserr => 500,
        }
    }

    /// The body line, without a newline: `good 192.0.2.1`, `badauth`, `invalid IP address`...
    pub fn body(self) -> String {
        match self {
            Self::Good(ip) => format!("good {ip}"),
            Self::Nochg(ip) => format!("nochg {ip}"),
            Self::Badauth => "badauth".into(),
            Self::Notfqdn => "notfqdn".into(),
            Self::Nohost => "nohost".into(),
            Self::BadAddress(error) => error.to_string(),
            Self::Dnserr => "dnserr".into(),
        }
    }

    /// A short stable label for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Good(_) => "good",
            Self::Nochg(_) => "nochg",
            Self::Badauth => "badauth",
            Self::Notfqdn => "notfqdn",
            Self::Nohost => "nohost",
            Self::BadAddress(_) => "badaddress",
            Self::Dnserr => "dnserr",
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn codes_map_to_body_and_status() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let cases = [
            (ReturnCode::Good(v4), 200, "good 192.0.2.1"),
            (ReturnCode::Good(v6), 200, "good 2001:db8::1"),
            (ReturnCode::Nochg(v4), 200, "nochg 192.0.2.1"),
            (ReturnCode::Badauth, 401, "badauth"),
            (ReturnCode::Notfqdn, 400, "notfqdn"),
            (ReturnCode::Nohost, 404, "nohost"),
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
    }
}
