//! IPv6 prefixes from routers, and the host addresses made from them.
//!
//! With IPv6 a provider changes the *prefix* of a whole home network; the hosts keep their
//! interface identifiers. A router that knows the new prefix (a FRITZ!Box's `<ip6lanprefix>`,
//! `2001:db8:1234:5600::/56`) sends it once, and each host with a [`HostSuffix`] gets its
//! address: the prefix's bits, then the host's subnet id up to its prefix length, then its
//! interface identifier.
//!
//! The mistakes peers made are refused here by type: a prefix without a length is not a prefix
//! (nsupdate.info took one for an address), a zero interface identifier would write the bare
//! prefix as a host address (nsupdate.info #648), and a prefix longer than the host's prefix
//! length would overwrite the host's own bits (the WAN /64 taken for the LAN /56, nsupdate.info
//! PR #497).

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

/// Why a prefix or a host's suffix cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Not an IPv6 prefix (`2001:db8:1234:5600::/56`).
    #[error("invalid IPv6 prefix (write it as 2001:db8:1234:5600::/56)")]
    Invalid,
    /// An address without `/length` where a prefix was asked for.
    #[error("IPv6 prefix without a length (write it as 2001:db8:1234:5600::/56)")]
    MissingLength,
    /// A prefix longer than the host's prefix length: it would overwrite the host's own bits.
    #[error("IPv6 prefix /{given} is longer than a host's /{host} (send the delegated LAN prefix)")]
    TooLong {
        /// The prefix's length.
        given: u8,
        /// The host's prefix length.
        host: u8,
    },
    /// The host's subnet id needs more bits than the prefix leaves before the host's length.
    #[error("a host's subnet id does not fit between the /{given} prefix and its /{host}")]
    SubnetTooLarge {
        /// The prefix's length.
        given: u8,
        /// The host's prefix length.
        host: u8,
    },
    /// An interface identifier of zero: the host's address would be the bare prefix.
    #[error("the interface identifier must not be zero")]
    ZeroInterfaceId,
    /// An interface identifier with bits inside the prefix length.
    #[error("the interface identifier has bits within the /{0} prefix")]
    InterfaceIdTooLong(u8),
    /// A prefix length a host cannot have (1 to 127).
    #[error("prefix length /{0} is not one of 1 to 127")]
    BadLength(u8),
    /// A subnet id that does not fit below the host's prefix length.
    #[error("subnet id {0:#x} does not fit in the host's prefix")]
    BadSubnetId(u64),
    /// Bits set past the prefix's length: an address, or a longer network, given a shorter
    /// length. Which was meant cannot be told, so nothing is guessed.
    #[error(
        "IPv6 prefix has bits set past its /{0} (send the network itself, as \
         2001:db8:1234:5600::/56)"
    )]
    HostBits(u8),
}

/// A prefix a router sends: a network and its length, parsed strictly (the length is
/// required, and no bit may be set past it: `2001:db8:1234:5601::/56` could be the LAN's
/// /64 sent with the delegation's length or a typo, and a guess would move every host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegatedPrefix(Ipv6Net);

impl DelegatedPrefix {
    /// The network, bits past the length zero.
    pub fn network(&self) -> Ipv6Addr {
        self.0.network()
    }

    /// The length.
    pub fn length(&self) -> u8 {
        self.0.prefix_len()
    }
}

impl std::str::FromStr for DelegatedPrefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.contains('/') {
            return Err(if text.parse::<Ipv6Addr>().is_ok() {
                PrefixError::MissingLength
            } else {
                PrefixError::Invalid
            });
        }
        let net: Ipv6Net = text.parse().map_err(|_| PrefixError::Invalid)?;
        // A /0 is everything and a /128 an address: neither is a network's prefix.
        if net.prefix_len() == 0 || net.prefix_len() == 128 || net.network().is_multicast() {
            return Err(PrefixError::Invalid);
        }
        if net.trunc() != net {
            return Err(PrefixError::HostBits(net.prefix_len()));
        }
        Ok(Self(net))
    }
}

impl std::fmt::Display for DelegatedPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a host keeps when its network's prefix changes: its interface identifier, the prefix
/// length it applies to (64 for SLAAC hosts), and the subnet id between a shorter delegated
/// prefix and that length (0 for the LAN's first /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSuffix {
    /// The interface identifier, as an address with zeros in the prefix (`::a:b:c:d`).
    interface_id: Ipv6Addr,
    /// The prefix length it applies to.
    prefix_length: u8,
    /// The subnet id.
    subnet_id: u64,
}

/// The mask of the first `len` bits of an IPv6 address.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

impl HostSuffix {
    /// The suffix `interface_id` at `/prefix_length` in subnet `subnet_id`, checked: the
    /// interface id is not zero and has no bit inside the prefix; the length is 1 to 127; the
    /// subnet id fits below the length (it is placed just before the interface id's bits).
    pub fn new(
        interface_id: Ipv6Addr,
        prefix_length: u8,
        subnet_id: u64,
    ) -> Result<Self, PrefixError> {
        if !(1..=127).contains(&prefix_length) {
            return Err(PrefixError::BadLength(prefix_length));
        }
        let id = u128::from(interface_id);
        if id == 0 {
            return Err(PrefixError::ZeroInterfaceId);
        }
        if id & mask(prefix_length) != 0 {
            return Err(PrefixError::InterfaceIdTooLong(prefix_length));
        }
        if u32::from(prefix_length) < 64 && subnet_id >> prefix_length != 0 {
            return Err(PrefixError::BadSubnetId(subnet_id));
        }
        Ok(Self {
            interface_id,
            prefix_length,
            subnet_id,
        })
    }

    /// The interface identifier.
    pub fn interface_id(&self) -> Ipv6Addr {
        self.interface_id
    }

    /// The prefix length it applies to.
    pub fn prefix_length(&self) -> u8 {
        self.prefix_length
    }

    /// The subnet id.
    pub fn subnet_id(&self) -> u64 {
        self.subnet_id
    }

    /// The host's address under `prefix`: the prefix's bits, the subnet id in the bits between
    /// the prefix's length and the host's, the interface id in the rest. A prefix longer than
    /// the host's length, or one that leaves too few bits for the subnet id, is refused.
    pub fn address(&self, prefix: &DelegatedPrefix) -> Result<Ipv6Addr, PrefixError> {
        let (given, host) = (prefix.length(), self.prefix_length);
        if given > host {
            return Err(PrefixError::TooLong { given, host });
        }
        let room = u32::from(host - given);
        let subnet = u128::from(self.subnet_id);
        if room < 64 && subnet >> room != 0 {
            return Err(PrefixError::SubnetTooLarge { given, host });
        }
        let network = u128::from(prefix.network()) & mask(given);
        let subnet_bits = if room == 0 {
            0
        } else {
            subnet << (128 - u32::from(host))
        };
        Ok(Ipv6Addr::from(
            network | subnet_bits | u128::from(self.interface_id),
        ))
    }
}

/// A prefix an update carries, and the parameter it came in (for the audit row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixUpdate {
    /// The prefix.
    pub prefix: DelegatedPrefix,
    /// `ip6lanprefix`, `ipv6prefix`, `myipv6` or `ipv6`.
    pub parameter: &'static str,
}

/// A subnet id as typed (the CLI, an import's `subnet_id` column): decimal or `0x`
/// hexadecimal.
pub fn parse_subnet_id(text: &str) -> Result<u64, String> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|error| format!("{text:?}: {error}"))
}

#[cfg(test)]
mod test {
    use super::*;

    fn prefix(text: &str) -> DelegatedPrefix {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    fn host(interface_id: &str, length: u8, subnet: u64) -> HostSuffix {
        HostSuffix::new(v6(interface_id), length, subnet).unwrap()
    }

    #[test]
    fn prefixes_of_every_usual_length_make_the_hosts_addresses() {
        let printer = host("::a:b:c:d", 64, 0);
        for (given, expected) in [
            ("2001:db8:1234::/48", "2001:db8:1234::a:b:c:d"),
            ("2001:db8:1234:5600::/56", "2001:db8:1234:5600:a:b:c:d"),
            ("2001:db8:1234:5670::/60", "2001:db8:1234:5670:a:b:c:d"),
            ("2001:db8:1234:5678::/64", "2001:db8:1234:5678:a:b:c:d"),
        ] {
            assert_eq!(printer.address(&prefix(given)), Ok(v6(expected)), "{given}");
        }
        // A subnet id fills the bits between the prefix and the host's /64.
        let nas = host("::1:2:3:4", 64, 1);
        assert_eq!(
            nas.address(&prefix("2001:db8:1234:5600::/56")),
            Ok(v6("2001:db8:1234:5601:1:2:3:4"))
        );
        assert_eq!(
            host("::1", 64, 0xff).address(&prefix("2001:db8:1234:5600::/56")),
            Ok(v6("2001:db8:1234:56ff::1"))
        );
        assert_eq!(
            host("::1", 64, 0x1234).address(&prefix("2001:db8:ab::/48")),
            Ok(v6("2001:db8:ab:1234::1"))
        );
        // A host length other than 64 (a /80 network, say).
        assert_eq!(
            host("::beef", 80, 2).address(&prefix("2001:db8:1::/64")),
            Ok(v6("2001:db8:1:0:2::beef"))
        );
    }

    #[test]
    fn prefixes_longer_than_the_host_or_without_room_for_its_subnet_are_refused() {
        let lan = host("::a:b:c:d", 64, 0);
        assert_eq!(
            lan.address(&prefix("2001:db8:1234:5678:9abc::/80")),
            Err(PrefixError::TooLong {
                given: 80,
                host: 64
            })
        );
        let third = host("::1", 64, 0x12);
        assert_eq!(
            third.address(&prefix("2001:db8:1234:5670::/60")),
            Err(PrefixError::SubnetTooLarge {
                given: 60,
                host: 64
            })
        );
        assert!(third.address(&prefix("2001:db8:1234:5600::/56")).is_ok());
        assert_eq!(
            third.address(&prefix("2001:db8:1234:5678::/64")),
            Err(PrefixError::SubnetTooLarge {
                given: 64,
                host: 64
            })
        );
        assert_eq!(
            lan.address(&prefix("2001:db8:1234:5678::/64")),
            Ok(v6("2001:db8:1234:5678:a:b:c:d")),
            "subnet 0 needs no room"
        );
    }

    #[test]
    fn what_peers_got_wrong_is_refused() {
        // A prefix needs its length; an address is not a prefix.
        assert_eq!(
            "2001:db8:1234:5600::".parse::<DelegatedPrefix>(),
            Err(PrefixError::MissingLength)
        );
        for bad in [
            "2001:db8::/129",
            "192.0.2.0/24",
            "::/0",
            "2001:db8::1/128",
            "ff02::/16",
            "x/56",
            "",
        ] {
            assert_eq!(
                bad.parse::<DelegatedPrefix>(),
                Err(PrefixError::Invalid),
                "{bad}"
            );
        }
        // Bits past the length: which network was meant cannot be told.
        for bad in ["2001:db8:1234:5601::/56", "2001:db8::1/64"] {
            let length = if bad.ends_with("56") { 56 } else { 64 };
            assert_eq!(
                bad.parse::<DelegatedPrefix>(),
                Err(PrefixError::HostBits(length)),
                "{bad}"
            );
        }
        // A zero interface id would write the bare prefix as the host's address.
        assert_eq!(
            HostSuffix::new(v6("::"), 64, 0),
            Err(PrefixError::ZeroInterfaceId)
        );
        // An interface id with bits in the prefix is an address, not an id.
        assert_eq!(
            HostSuffix::new(v6("2001:db8::1"), 64, 0),
            Err(PrefixError::InterfaceIdTooLong(64))
        );
        assert_eq!(
            HostSuffix::new(v6("::1"), 0, 0),
            Err(PrefixError::BadLength(0))
        );
        assert_eq!(
            HostSuffix::new(v6("::1"), 128, 0),
            Err(PrefixError::BadLength(128))
        );
        assert_eq!(
            HostSuffix::new(v6("::1"), 48, 1 << 48),
            Err(PrefixError::BadSubnetId(1 << 48))
        );
        assert_eq!(
            prefix("2001:db8:1234:5600::/56").to_string(),
            "2001:db8:1234:5600::/56"
        );
    }
}
