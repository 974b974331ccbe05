//! `certadns-ddns domain ...`: DDNS domains and their owners.

use std::collections::HashSet;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Admin, print_line, print_listing};
use crate::intel::IpIntel;
use crate::model::{DomainName, HostSuffix, RecordType, check_family, parse_ip, parse_subnet_id};
use crate::store::audit::ChangeContext;
use crate::store::{StoreError, abuse, domains, timestamp, users, zones};

/// Domain commands.
#[derive(Debug, Subcommand)]
pub(super) enum DomainCommand {
    /// Add a DDNS domain inside an existing zone.
    Add {
        /// The name, e.g. home.dyn.example.net.
        fqdn: String,
        /// The user who may update it.
        #[arg(long, value_name = "USER")]
        owner: String,
        /// A or AAAA. A name may have one of each.
        #[arg(long = "type", value_name = "A|AAAA")]
        record_type: RecordType,
        /// A first address; without it nothing is served until the first update.
        #[arg(long)]
        ip: Option<String>,
        /// How the host's address follows its network's IPv6 prefix (AAAA only).
        #[command(flatten)]
        prefix: PrefixArgs,
    },
    /// Change how an AAAA domain follows its network's IPv6 prefix.
    Set {
        /// The name.
        fqdn: String,
        /// The new settings.
        #[command(flatten)]
        prefix: PrefixArgs,
        /// Take whole addresses only from now on: forget the interface identifier.
        #[arg(long, conflicts_with_all = ["interface_id", "prefix_length", "subnet_id"])]
        no_interface_id: bool,
        /// Stop following another name's prefix.
        #[arg(long, conflicts_with = "follows")]
        no_follows: bool,
    },
    /// Remove a domain (both types, or one with --type). Its history stays.
    Remove {
        /// The name.
        fqdn: String,
        /// Only this record type.
        #[arg(long = "type", value_name = "A|AAAA")]
        record_type: Option<RecordType>,
    },
    /// Import domains from a CSV (header fqdn,owner,type,address) or JSON Lines file: every row
    /// checked first, nothing imported when one is bad (unless --skip-invalid).
    Import(super::transfer::ImportArgs),
    /// Write every domain to standard output as CSV (fqdn,owner,type,address) or JSON Lines.
    Export {
        /// csv or jsonl.
        #[arg(long, value_enum, default_value = "csv")]
        format: super::transfer::Format,
    },
    /// List domains, all or one owner's; FLAG says `abuse` for a host answered `abuse` now.
    List {
        /// Only this user's domains.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Print a JSON array of objects (the keys of `domain export`, and more) instead of
        /// columns.
        #[arg(long)]
        json: bool,
    },
}

/// How a host's AAAA address is made from a prefix its router sends (`ip6lanprefix`,
/// `ipv6prefix`, or a prefix in `myipv6`): the prefix, then the subnet id up to the prefix
/// length, then the interface identifier.
#[derive(Debug, clap::Args)]
pub(super) struct PrefixArgs {
    /// The host's interface identifier, e.g. ::a:b:c:d (its SLAAC or static host part; never
    /// zero).
    #[arg(long, value_name = "IID")]
    interface_id: Option<std::net::Ipv6Addr>,
    /// The prefix length the interface identifier applies to [default: 64].
    #[arg(long, value_name = "BITS")]
    prefix_length: Option<u8>,
    /// The subnet between a shorter delegated prefix (a /56) and the prefix length, e.g. 1 or
    /// 0x1 for the LAN's second /64 [default: 0].
    #[arg(long, value_name = "ID", value_parser = parse_subnet_id)]
    subnet_id: Option<u64>,
    /// Another name of the same owner: a prefix sent for it updates this host too.
    #[arg(long, value_name = "NAME")]
    follows: Option<String>,
}

impl PrefixArgs {
    /// The suffix these flags give, over `current` (a domain's, for `set`); None when no flag
    /// of the suffix is set and there is none.
    fn suffix(&self, current: Option<HostSuffix>) -> anyhow::Result<Option<HostSuffix>> {
        if self.interface_id.is_none() && self.prefix_length.is_none() && self.subnet_id.is_none() {
            return Ok(current);
        }
        let Some(interface_id) = self
            .interface_id
            .or(current.map(|suffix| suffix.interface_id()))
        else {
            anyhow::bail!("--prefix-length and --subnet-id need an --interface-id");
        };
        let length = self
            .prefix_length
            .or(current.map(|suffix| suffix.prefix_length()))
            .unwrap_or(64);
        let subnet = self
            .subnet_id
            .or(current.map(|suffix| suffix.subnet_id()))
            .unwrap_or(0);
        Ok(Some(
            HostSuffix::new(interface_id, length, subnet).context("invalid --interface-id")?,
        ))
    }

    /// The name to follow, checked.
    fn leader(&self) -> anyhow::Result<Option<DomainName>> {
        self.follows
            .as_deref()
            .map(|name| {
                name.parse()
                    .with_context(|| format!("invalid --follows name {name:?}"))
            })
            .transpose()
    }
}

/// Runs a domain command.
pub(super) fn run(admin: &Admin, command: DomainCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        DomainCommand::Add {
            fqdn,
            owner,
            record_type,
            ip,
            prefix,
        } => {
            let fqdn: DomainName = fqdn
                .parse()
                .with_context(|| format!("invalid name {fqdn:?}"))?;
            let suffix = prefix.suffix(None)?;
            anyhow::ensure!(
                suffix.is_none() || record_type == RecordType::Aaaa,
                "an interface id is for AAAA domains"
            );
            let leader = prefix.leader()?;
            let ip = ip
                .as_deref()
                .map(|text| {
                    let ip = parse_ip(text).with_context(|| format!("{text:?}"))?;
                    check_family(record_type, ip).with_context(|| format!("{text:?}"))?;
                    anyhow::Ok(ip)
                })
                .transpose()?;
            // The audit row of the first address says what `[audit]` knows of it, as the
            // service's rows do; the files are read only when there is an address.
            let mut context = ChangeContext::admin();
            if let Some(ip) = ip {
                let (intel, _) = IpIntel::load(&admin.config.audit)
                    .context("cannot load the [audit] files of the config")?;
                context.address_facts = vec![(ip, intel.facts(ip))];
            }
            let zone_name = store.write(|tx| {
                let zone = zones::find_enclosing_zone(tx, fqdn.as_str())?.ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "{fqdn} is not inside any zone; add the zone first with `certadns-ddns zone add`"
                    ))
                })?;
                let user = users::get_user(tx, &owner.to_ascii_lowercase())?;
                let zone_name = zone.name.clone();
                let domain = domains::NewDomain {
                    fqdn: fqdn.clone(),
                    user_id: user.id,
                    zone,
                    record_type,
                    ip,
                    suffix,
                    leader: leader.clone(),
                };
                domains::add_domain(
                    tx,
                    &domains::StoredHolders(tx),
                    &domain,
                    &context,
                    &timestamp(),
                )?;
                Ok(zone_name)
            })?;
            // A new name: drop the zone's cached negative answers.
            admin.purge(vec![zone_name]);
            print_line(&format!("added {record_type} domain {fqdn} for {owner}"))
        }
        DomainCommand::Set {
            fqdn,
            prefix,
            no_interface_id,
            no_follows,
        } => {
            let fqdn: DomainName = fqdn
                .parse()
                .with_context(|| format!("invalid name {fqdn:?}"))?;
            let leader = prefix.leader()?;
            let (suffix, follows) = store.write(|tx| {
                let domains = domains::list_named(tx, &fqdn)?;
                let Some(first) = domains.first() else {
                    return Err(StoreError::NotFound(format!("no such domain: {fqdn}")));
                };
                let current = domains.iter().find_map(|domain| domain.suffix);
                let suffix = if no_interface_id {
                    None
                } else {
                    prefix
                        .suffix(current)
                        .map_err(|error| StoreError::Conflict(format!("{error:#}")))?
                };
                if suffix != current {
                    domains::set_suffix(tx, &fqdn, suffix)?;
                }
                let follows = if no_follows {
                    domains::set_follows(tx, &fqdn, None)?;
                    None
                } else if let Some(leader) = &leader {
                    domains::set_follows(tx, &fqdn, Some(leader))?;
                    Some(leader.to_string())
                } else {
                    first.follows.clone()
                };
                Ok((suffix, follows))
            })?;
            let shown = suffix.map_or_else(
                || "whole addresses only".to_string(),
                |suffix| {
                    format!(
                        "interface id {} at /{}, subnet {:#x}",
                        suffix.interface_id(),
                        suffix.prefix_length(),
                        suffix.subnet_id()
                    )
                },
            );
            let following =
                follows.map_or_else(String::new, |leader| format!("; follows {leader}"));
            print_line(&format!("{fqdn}: {shown}{following}"))
        }
        DomainCommand::Remove { fqdn, record_type } => {
            let fqdn: DomainName = fqdn
                .parse()
                .with_context(|| format!("invalid name {fqdn:?}"))?;
            let (removed, zone) = store.write(|tx| {
                let zone = zones::find_enclosing_zone(tx, fqdn.as_str())?;
                let removed =
                    domains::remove_domains(tx, fqdn.as_str(), record_type, &timestamp())?;
                Ok((removed, zone))
            })?;
            anyhow::ensure!(removed > 0, "no such domain: {fqdn}");
            admin.purge(zone.map(|zone| zone.name).into_iter().collect());
            print_line(&format!("removed {removed} domain(s) named {fqdn}"))
        }
        DomainCommand::Import(args) => {
            super::transfer::import_domains(admin, &args.file, args.format, args.skip_invalid)
        }
        DomainCommand::Export { format } => super::transfer::export_domains(admin, format),
        DomainCommand::List { owner, json } => {
            let (domains, flagged) = store.read(|conn| {
                let user_id = match &owner {
                    Some(name) => Some(users::get_user(conn, &name.to_ascii_lowercase())?.id),
                    None => None,
                };
                let flagged: HashSet<(i64, String)> =
                    abuse::flagged(conn, &timestamp())?.into_iter().collect();
                Ok((domains::list_domains(conn, user_id)?, flagged))
            })?;
            print_listing(
                json,
                &[
                    ("FQDN", "fqdn"),
                    ("TYPE", "type"),
                    ("IP", "address"),
                    ("OWNER", "owner"),
                    ("ZONE", "zone"),
                    ("UPDATED", "updated_at"),
                    ("LAST_CHECKED", "last_checked_at"),
                    ("FLAG", "flag"),
                    ("INTERFACE_ID", "interface_id"),
                    ("PREFIX_LENGTH", "prefix_length"),
                    ("SUBNET_ID", "subnet_id"),
                    ("FOLLOWS", "follows"),
                ],
                domains.into_iter().map(|domain| {
                    // Hosts whose requests stay above the rate: answered `abuse` for now.
                    let flagged = flagged.contains(&(domain.user_id, domain.fqdn.to_lowercase()));
                    vec![
                        domain.fqdn.into(),
                        domain.record_type.to_string().into(),
                        domain.ip.map(|ip| ip.to_string()).into(),
                        domain.owner.into(),
                        domain.zone.into(),
                        domain.updated_at.into(),
                        domain.last_checked_at.into(),
                        flagged.then_some("abuse").into(),
                        domain
                            .suffix
                            .map(|suffix| suffix.interface_id().to_string())
                            .into(),
                        domain.suffix.map(|suffix| suffix.prefix_length()).into(),
                        domain.suffix.map(|suffix| suffix.subnet_id()).into(),
                        domain.follows.into(),
                    ]
                }),
            )
        }
    }
}
