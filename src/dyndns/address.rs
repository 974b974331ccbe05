//! The addresses an update asks for: `myip`, `ip`, `myipv4`/`ipv4`, `myipv6`/`ipv6`, in the
//! forms clients send (one address, a `v4,v6` pair, `preserve`), turned into at most one target
//! per family, strictly: a value that does not parse is a 400, never a guess.

use std::net::IpAddr;

use crate::model::{IpError, parse_ip};

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

#[cfg(test)]
mod test {
    use super::*;
    use crate::dyndns::request::{Endpoint, parse_update_request};

    fn plan(query: &str) -> Result<AddressPlan, IpError> {
        let request = parse_update_request(Endpoint::Nic, None, Some(query), None, None);
        plan_addresses(&request.addresses)
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
}
