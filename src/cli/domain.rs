//! `certadns-ddns domain ...`: DDNS domains and their owners.

use std::collections::HashSet;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Admin, or_dash, print_line, print_table};
use crate::intel::IpIntel;
use crate::model::{DomainName, RecordType, check_family, parse_ip};
use crate::store::audit::ChangeContext;
use crate::store::{StoreError, abuse, domains, records, timestamp, users, zones};

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
    },
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
        } => {
            let fqdn: DomainName = fqdn
                .parse()
                .with_context(|| format!("invalid name {fqdn:?}"))?;
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
                records::check_record_fits(tx, &zone, fqdn.as_str(), record_type.as_str())?;
                let now = timestamp();
                let id = domains::insert_domain(tx, &fqdn, user.id, zone.id, record_type, &now)?;
                if let Some(ip) = ip {
                    let domain = domains::get_domain(tx, id)?;
                    domains::change_address(tx, &domain, ip, &context, &now)?;
                }
                Ok(zone.name)
            })?;
            // A new name: drop the zone's cached negative answers.
            admin.purge(vec![zone_name]);
            print_line(&format!("added {record_type} domain {fqdn} for {owner}"))
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
        DomainCommand::List { owner } => {
            let (domains, flagged) = store.read(|conn| {
                let user_id = match &owner {
                    Some(name) => Some(users::get_user(conn, &name.to_ascii_lowercase())?.id),
                    None => None,
                };
                let flagged: HashSet<(i64, String)> =
                    abuse::flagged(conn, &timestamp())?.into_iter().collect();
                Ok((domains::list_domains(conn, user_id)?, flagged))
            })?;
            print_table(
                &[
                    "FQDN",
                    "TYPE",
                    "IP",
                    "OWNER",
                    "ZONE",
                    "UPDATED",
                    "LAST_CHECKED",
                    "FLAG",
                ],
                domains.into_iter().map(|domain| {
                    // Hosts whose requests stay above the rate: answered `abuse` for now.
                    let flag = if flagged.contains(&(domain.user_id, domain.fqdn.to_lowercase())) {
                        "abuse"
                    } else {
                        "-"
                    };
                    vec![
                        domain.fqdn,
                        domain.record_type.to_string(),
                        or_dash(domain.ip.map(|ip| ip.to_string()).as_deref()),
                        domain.owner,
                        domain.zone,
                        domain.updated_at,
                        or_dash(domain.last_checked_at.as_deref()),
                        flag.to_string(),
                    ]
                }),
            )
        }
    }
}
