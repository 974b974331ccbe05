//! `[transfers]`: zone transfers (AXFR, IXFR) and NOTIFY to secondaries, from the DNS listener
//! of `[listeners] update-dns-listen`. Closed by default: no one may transfer a zone until
//! `allow-from` lists them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ConfigError, Section, changed};

/// `[transfers]`: who may transfer zones, whom to notify, and how much history IXFR keeps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Transfers {
    /// Networks whose secondaries may transfer any zone (AXFR, IXFR); empty: none may.
    pub allow_from: Vec<IpNet>,
    /// Whether a transfer must also be signed with an admin's TSIG key for the whole zone
    /// (`certadns-ddns tsig add --zone ZONE`): the address alone is not enough.
    pub require_tsig: bool,
    /// Secondaries notified of every change to every zone (`ip` or `ip:port`, port 53 by
    /// default).
    pub notify: Vec<String>,
    /// `[transfers.zone-notify]`: zone name → secondaries notified of its changes only.
    /// (Not the zone's `--also-notify` list: that is pdns's, for secondaries whose primary is
    /// pdns, which would refuse a NOTIFY from here.)
    pub zone_notify: BTreeMap<String, Vec<String>>,
    /// The admin TSIG key (by name) that signs NOTIFY messages, for secondaries that take
    /// only signed ones; none: unsigned.
    pub notify_key: Option<String>,
    /// At most one NOTIFY per zone and secondary in this long: a zone changing every few
    /// milliseconds costs a secondary one transfer a second.
    #[serde(rename = "notify-interval-ms", with = "super::units::millis")]
    pub notify_interval: Duration,
    /// How long IXFR can say what changed: a secondary further behind gets the whole zone.
    #[serde(rename = "history-secs", with = "super::units::secs")]
    pub history: Duration,
    /// Most changed records kept per zone for IXFR (each some 100 bytes of memory); the
    /// oldest changes go first.
    pub history_records: usize,
}

impl Default for Transfers {
    fn default() -> Self {
        Self {
            allow_from: Vec::new(),
            require_tsig: false,
            notify: Vec::new(),
            zone_notify: BTreeMap::new(),
            notify_key: None,
            notify_interval: Duration::from_secs(1),
            history: Duration::from_secs(24 * 3600),
            history_records: 1_000_000,
        }
    }
}

/// Port 53 unless the target says otherwise.
const DNS_PORT: u16 = 53;

/// `ip` or `ip:port` (`[v6]:port`) as an address to send NOTIFY to.
pub fn notify_address(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
        })
        .map_err(|_| {
            ConfigError::Invalid(format!(
                "[transfers] notify {text:?}: an address is `ip` or `ip:port` (`[v6]:port`)"
            ))
        })
}

impl Transfers {
    /// Whether zone histories are kept and transfers or NOTIFY are served at all.
    pub fn enabled(&self) -> bool {
        !self.allow_from.is_empty() || !self.notify.is_empty() || !self.zone_notify.is_empty()
    }

    /// The secondaries to notify of changes to zone `zone` (lower case, no final dot): the
    /// global ones and the zone's own, as addresses (checked by `validate`).
    pub fn notify_addresses(&self, zone: &str) -> Vec<SocketAddr> {
        let own = self
            .zone_notify
            .iter()
            .filter(|(name, _)| name.trim_end_matches('.').eq_ignore_ascii_case(zone))
            .flat_map(|(_, targets)| targets);
        let mut targets: Vec<SocketAddr> = self
            .notify
            .iter()
            .chain(own)
            .filter_map(|text| notify_address(text).ok())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }
}

impl Section for Transfers {
    fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        // The history is kept from the start, or not at all; the rest is read live.
        let Self {
            allow_from: _,
            require_tsig: _,
            notify: _,
            zone_notify: _,
            notify_key: _,
            notify_interval: _,
            history,
            history_records,
        } = self;
        changed(&[
            ("transfers.history-secs", *history != next.history),
            (
                "transfers.history-records",
                *history_records != next.history_records,
            ),
            (
                "transfers (enabled, by allow-from or notify)",
                self.enabled() != next.enabled(),
            ),
        ])
    }

    fn reloaded(&self, next: &Self) -> Self {
        Self {
            history: self.history,
            history_records: self.history_records,
            ..next.clone()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for target in self
            .notify
            .iter()
            .chain(self.zone_notify.values().flatten())
        {
            notify_address(target)?;
        }
        if self.notify_interval < Duration::from_millis(100) {
            return Err(ConfigError::Invalid(
                "[transfers] notify-interval-ms must be at least 100".into(),
            ));
        }
        if self.history_records == 0 || self.history.is_zero() {
            return Err(ConfigError::Invalid(
                "[transfers] history-secs and history-records must be at least 1 (a secondary \
                 that cannot follow by IXFR gets the whole zone every time)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn notify_targets_take_a_port_or_default_to_53() {
        assert_eq!(
            notify_address("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse().unwrap()
        );
        assert_eq!(
            notify_address("[2001:db8::1]:5300").unwrap(),
            "[2001:db8::1]:5300".parse().unwrap()
        );
        let error = notify_address("ns1.example.net").unwrap_err().to_string();
        assert!(error.contains("`ip` or `ip:port`"), "{error}");
        let transfers = Transfers {
            notify: vec!["192.0.2.1".into()],
            zone_notify: [(
                "Dyn.Example.".to_string(),
                vec!["192.0.2.2:5300".into(), "192.0.2.1".into()],
            )]
            .into(),
            ..Transfers::default()
        };
        let addresses = |zone| -> Vec<String> {
            transfers
                .notify_addresses(zone)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(addresses("dyn.example"), ["192.0.2.1:53", "192.0.2.2:5300"]);
        assert_eq!(addresses("other.example"), ["192.0.2.1:53"]);
    }

    #[test]
    fn closed_by_default_and_a_history_is_required() {
        let transfers = Transfers::default();
        assert!(!transfers.enabled());
        transfers.validate().unwrap();
        let none = Transfers {
            history_records: 0,
            ..Transfers::default()
        };
        assert!(none.validate().is_err());
    }
}
