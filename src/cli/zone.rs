//! `certadns-ddns zone ...`: the zones served.

use anyhow::Context as _;
use clap::Subcommand;

use super::{Admin, print_line, print_listing};
use crate::model::dnssec::{KSK_FLAGS, NewZoneKey, PublicKey, SigningAlgorithm};
use crate::model::{DomainName, format_notify_target, parse_notify_target};
use crate::store::zones::SoaTimers;
use crate::store::{StoreError, dnssec, timestamp, zones};

/// Zone commands.
#[derive(Debug, Subcommand)]
pub(super) enum ZoneCommand {
    /// Add a zone. Its SOA serial starts at today's YYYYMMDD01.
    Add {
        /// Zone apex, e.g. dyn.example.net.
        name: String,
        /// Authoritative name server (repeat for several); the first is the SOA MNAME.
        #[arg(long = "ns", value_name = "HOST", required = true)]
        nameservers: Vec<String>,
        /// Responsible mailbox, as hostmaster@example.net or hostmaster.example.net
        /// [default: hostmaster.<zone>].
        #[arg(long, value_name = "MAILBOX")]
        hostmaster: Option<String>,
        /// SOA timers and the TTL of the SOA and NS records.
        #[command(flatten)]
        timers: TimerArgs,
        /// A secondary to notify of changes besides the NS set, as IP or IP:PORT ([v6]:PORT);
        /// it may also transfer the zone (repeat for several).
        #[arg(long, value_name = "IP[:PORT]")]
        also_notify: Vec<String>,
    },
    /// Change a zone's secondaries.
    Set {
        /// The zone.
        name: String,
        /// The secondaries to notify besides the NS set (replaces the list; repeat for several).
        #[arg(
            long,
            value_name = "IP[:PORT]",
            required_unless_present = "clear_also_notify"
        )]
        also_notify: Vec<String>,
        /// Remove every secondary.
        #[arg(long, conflicts_with = "also_notify")]
        clear_also_notify: bool,
    },
    /// Remove a zone and pdns's cached answers for it; refused while it holds DDNS domains or
    /// static records, unless --with-domains.
    Remove {
        /// The zone.
        name: String,
        /// Remove its DDNS domains and static records with it (their history stays).
        #[arg(long)]
        with_domains: bool,
    },
    /// Sign a zone with DNSSEC: one new key (a CSK, flags 257) and NSEC3 narrow denial (or
    /// NSEC), which pdns (with remote-dnssec=yes) uses for every answer within a minute. Prints
    /// the DS records to hand to the parent zone's registrar. Refused for a zone that has keys.
    Secure {
        /// The zone.
        name: String,
        /// The key's algorithm.
        #[arg(long, default_value = "ecdsap256sha256", value_parser = ["ecdsap256sha256", "ed25519"])]
        algorithm: String,
        /// Deny with NSEC3 in narrow mode, made per answer (the default).
        #[arg(long, conflicts_with = "nsec")]
        nsec3_narrow: bool,
        /// Deny with NSEC over the zone's names in order: what secondaries that take the
        /// signed zone by AXFR need (pdns does not transfer NSEC3 narrow zones); the names can
        /// be listed by walking the chain.
        #[arg(long)]
        nsec: bool,
    },
    /// Print the DS records for the parent zone (SHA-256 and SHA-384) of a signed zone's
    /// published KSKs, and its DNSKEY records.
    Ds {
        /// The zone.
        name: String,
    },
    /// List a zone's DNSSEC keys: id, role, algorithm, key tag, active, published.
    Keys {
        /// The zone.
        name: String,
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// List the zones.
    List {
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
}

/// SOA timer flags of `zone add`, in seconds.
#[derive(Debug, clap::Args)]
pub(super) struct TimerArgs {
    /// SOA refresh: how often secondaries check the serial.
    #[arg(long, default_value_t = SoaTimers::default().refresh)]
    refresh: u32,
    /// SOA retry: how soon secondaries retry a failed check.
    #[arg(long, default_value_t = SoaTimers::default().retry)]
    retry: u32,
    /// SOA expire: how long secondaries serve without reaching the primary.
    #[arg(long, default_value_t = SoaTimers::default().expire)]
    expire: u32,
    /// SOA minimum: how long resolvers cache "no such name" (keep it short for DDNS).
    #[arg(long, default_value_t = SoaTimers::default().minimum)]
    minimum: u32,
    /// TTL of the SOA and NS records.
    #[arg(long, default_value_t = SoaTimers::default().ttl)]
    ttl: u32,
}

/// Runs a zone command.
pub(super) fn run(admin: &Admin, command: ZoneCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        ZoneCommand::Add {
            name,
            nameservers,
            hostmaster,
            timers,
            also_notify,
        } => {
            let also_notify = notify_targets(&also_notify)?;
            let timers = SoaTimers {
                refresh: timers.refresh,
                retry: timers.retry,
                expire: timers.expire,
                minimum: timers.minimum,
                ttl: timers.ttl,
            };
            let zone: DomainName = name
                .parse()
                .with_context(|| format!("invalid zone name {name:?}"))?;
            let nameservers = nameservers
                .iter()
                .map(|ns| {
                    ns.parse()
                        .with_context(|| format!("invalid name server {ns:?}"))
                })
                .collect::<anyhow::Result<Vec<DomainName>>>()?;
            let hostmaster = hostmaster.as_deref().map(mailbox_to_dns_name).transpose()?;
            store.write(|tx| {
                let now = timestamp();
                let id =
                    zones::insert_zone(tx, &zone, &nameservers, hostmaster.as_ref(), timers, &now)?;
                zones::set_also_notify(tx, id, &also_notify, &now)
            })?;
            // A purge of the new zone also makes pdns add it to its zone cache.
            admin.purge(vec![zone.to_string()]);
            let hint = if admin.purger.is_some() {
                ""
            } else {
                "; with pdns running, `pdns_control rediscover` makes it answerable now"
            };
            print_line(&format!("added zone {zone}{hint}"))
        }
        ZoneCommand::Set {
            name, also_notify, ..
        } => {
            let zone: DomainName = name
                .parse()
                .with_context(|| format!("invalid zone name {name:?}"))?;
            let also_notify = notify_targets(&also_notify)?;
            store.write(|tx| {
                let found = zones::get_zone(tx, &zone)?;
                zones::set_also_notify(tx, found.id, &also_notify, &timestamp())
            })?;
            print_line(&format!(
                "zone {zone}: secondaries to notify: {}",
                if also_notify.is_empty() {
                    "none".to_string()
                } else {
                    also_notify.join(", ")
                }
            ))
        }
        ZoneCommand::Remove { name, with_domains } => {
            let zone: DomainName = name
                .parse()
                .with_context(|| format!("invalid zone name {name:?}"))?;
            let removal = store.write(|tx| {
                let found = zones::get_zone(tx, &zone)?;
                zones::remove_zone(tx, &found, with_domains)
            })?;
            admin.purge(vec![zone.to_string()]);
            print_line(&format!(
                "removed zone {zone} ({} DDNS domains, {} static records)",
                removal.domains, removal.records
            ))
        }
        ZoneCommand::Secure {
            name,
            algorithm,
            nsec,
            ..
        } => {
            let zone = parse_zone(&name)?;
            let algorithm: SigningAlgorithm = algorithm.parse().map_err(anyhow::Error::msg)?;
            let key = NewZoneKey {
                flags: KSK_FLAGS,
                active: true,
                published: true,
                content: algorithm.generate(),
            };
            store.write(|tx| {
                let found = zones::get_zone(tx, &zone)?;
                if !dnssec::zone_keys(tx, found.id)?.is_empty() {
                    return Err(StoreError::Conflict(format!(
                        "zone {zone} has DNSSEC keys already: `certadns-ddns zone keys {zone}` \
                         lists them, `certadns-ddns zone ds {zone}` prints its DS records"
                    )));
                }
                dnssec::add_key(tx, found.id, &key, &timestamp())?;
                if nsec {
                    // pdns's default denial when the zone has no NSEC3PARAM.
                    dnssec::set_metadata(tx, found.id, "NSEC3PARAM", &[])?;
                    dnssec::set_metadata(tx, found.id, "NSEC3NARROW", &[])
                } else {
                    dnssec::set_metadata(tx, found.id, "NSEC3PARAM", &[NSEC3_NARROW_PARAM.into()])?;
                    dnssec::set_metadata(tx, found.id, "NSEC3NARROW", &["1".into()])
                }
            })?;
            // Unsigned answers pdns cached for this zone go now; its key and metadata caches
            // (30 s and 60 s) end on their own.
            admin.purge(vec![zone.to_string()]);
            print_line(&format!(
                "zone {zone} is signed ({}, {}): pdns with remote-dnssec=yes signs its answers \
                 within a minute. Give the parent zone these DS records (most registrars take \
                 the first):",
                algorithm.mnemonic(),
                if nsec { "NSEC" } else { "NSEC3 narrow" }
            ))?;
            print_ds(store, &zone, false)
        }
        ZoneCommand::Ds { name } => print_ds(store, &parse_zone(&name)?, true),
        ZoneCommand::Keys { name, json } => {
            let zone = parse_zone(&name)?;
            let keys = store.read(|conn| {
                let found = zones::get_zone(conn, &zone)?;
                dnssec::zone_keys(conn, found.id)
            })?;
            print_listing(
                json,
                &[
                    ("ID", "id"),
                    ("ROLE", "role"),
                    ("ALGORITHM", "algorithm"),
                    ("TAG", "tag"),
                    ("ACTIVE", "active"),
                    ("PUBLISHED", "published"),
                    ("CREATED", "created_at"),
                ],
                keys.into_iter().map(|key| {
                    let public = PublicKey::from_private(key.flags, &key.content);
                    vec![
                        key.id.into(),
                        if key.flags == KSK_FLAGS {
                            "KSK/CSK"
                        } else {
                            "ZSK"
                        }
                        .into(),
                        public
                            .as_ref()
                            .map_or_else(|_| "?".into(), |public| public.algorithm.into()),
                        public
                            .as_ref()
                            .map_or_else(|_| "?".into(), |public| public.key_tag().into()),
                        key.active.into(),
                        key.published.into(),
                        key.created_at.into(),
                    ]
                }),
            )
        }
        ZoneCommand::List { json } => {
            let zones = store.read(zones::list_zones)?;
            print_listing(
                json,
                &[
                    ("ZONE", "zone"),
                    ("SERIAL", "serial"),
                    ("NAMESERVERS", "nameservers"),
                    ("HOSTMASTER", "hostmaster"),
                    ("ALSO_NOTIFY", "also_notify"),
                ],
                zones.into_iter().map(|zone| {
                    vec![
                        zone.name.into(),
                        zone.serial.into(),
                        zone.nameservers.into(),
                        zone.hostmaster.into(),
                        zone.also_notify.into(),
                    ]
                }),
            )
        }
    }
}

/// The NSEC3 parameters of `zone secure`: SHA-1, no opt-out, no extra iterations and no salt,
/// as RFC 9276 recommends; narrow mode makes every denial on the fly.
const NSEC3_NARROW_PARAM: &str = "1 0 0 -";

/// A zone name from the command line.
fn parse_zone(name: &str) -> anyhow::Result<DomainName> {
    name.parse()
        .with_context(|| format!("invalid zone name {name:?}"))
}

/// Prints the DS records of `zone`'s published KSKs (digest types 2 and 4) and, with
/// `with_dnskeys`, every published DNSKEY, in zone-file form.
fn print_ds(
    store: &crate::store::Store,
    zone: &DomainName,
    with_dnskeys: bool,
) -> anyhow::Result<()> {
    let keys = store.read(|conn| {
        let found = zones::get_zone(conn, zone)?;
        dnssec::zone_keys(conn, found.id)
    })?;
    let published: Vec<_> = keys.iter().filter(|key| key.published).collect();
    if published.is_empty() {
        anyhow::bail!(
            "zone {zone} has no published DNSSEC key: `certadns-ddns zone secure {zone}` signs it"
        );
    }
    let mut dnskeys = Vec::new();
    for key in published {
        let public = PublicKey::from_private(key.flags, &key.content)
            .with_context(|| format!("key {} of zone {zone}", key.id))?;
        if key.flags == KSK_FLAGS {
            for digest in [2, 4] {
                print_line(&format!(
                    "{zone}. IN DS {}",
                    public.ds_text(zone.as_str(), digest)?
                ))?;
            }
        }
        dnskeys.push(format!("{zone}. IN DNSKEY {}", public.dnskey_text()));
    }
    if with_dnskeys {
        for line in dnskeys {
            print_line(&line)?;
        }
    }
    Ok(())
}

/// Validates NOTIFY targets and puts them in canonical form.
fn notify_targets(targets: &[String]) -> anyhow::Result<Vec<String>> {
    targets
        .iter()
        .map(|target| {
            let (ip, port) = parse_notify_target(target).map_err(anyhow::Error::msg)?;
            Ok(format_notify_target(ip, port))
        })
        .collect()
}

/// Turns `hostmaster@example.net` into the SOA RNAME `hostmaster.example.net`; a name already
/// in DNS form passes through.
fn mailbox_to_dns_name(mailbox: &str) -> anyhow::Result<DomainName> {
    let dns_form = match mailbox.split_once('@') {
        Some((local, domain)) => {
            anyhow::ensure!(
                !local.contains('.'),
                "hostmaster mailbox {mailbox:?}: a '.' in the local part is not supported"
            );
            format!("{local}.{domain}")
        }
        None => mailbox.to_string(),
    };
    dns_form
        .parse()
        .with_context(|| format!("invalid hostmaster mailbox {mailbox:?}"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn mailboxes_become_dns_names() {
        assert_eq!(
            mailbox_to_dns_name("Hostmaster@Example.net")
                .unwrap()
                .as_str(),
            "hostmaster.example.net"
        );
        assert_eq!(
            mailbox_to_dns_name("hostmaster.example.net")
                .unwrap()
                .as_str(),
            "hostmaster.example.net"
        );
        assert!(mailbox_to_dns_name("first.last@example.net").is_err());
        assert!(mailbox_to_dns_name("bad mailbox@example.net").is_err());
    }
}
