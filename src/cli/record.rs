//! `certadns-ddns record ...`: static records an admin keeps in a zone.

use anyhow::Context as _;
use clap::Subcommand;

use super::{Admin, print_line, print_listing};
use crate::model::DomainName;
use crate::model::rdata::{StaticType, normalize_content, resolve_owner_name};
use crate::store::{records, timestamp, zones};

/// Record commands.
#[derive(Debug, Subcommand)]
pub(super) enum RecordCommand {
    /// Add a static record. NAME is `@` for the apex, relative to the zone (`ns1`), or absolute
    /// (`ns1.dyn.example.net` or with a final dot); `*` labels make wildcards.
    Add {
        /// The zone.
        zone: String,
        /// Owner name.
        name: String,
        /// A, AAAA, CNAME, MX, TXT, NS, SRV, CAA, PTR or DHCID.
        #[arg(value_name = "TYPE")]
        record_type: StaticType,
        /// Content, e.g. `192.0.2.1`, `10 mail.example.net`, `"v=spf1 -all"`, `0 issue "ca.example"`.
        content: String,
        /// TTL in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// List everything the zone serves: SOA, NS, static records and DDNS addresses.
    List {
        /// The zone.
        zone: String,
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Remove static records of a type at a name (only the one with CONTENT, when given).
    Remove {
        /// The zone.
        zone: String,
        /// Owner name, as for `add`.
        name: String,
        /// Record type.
        #[arg(value_name = "TYPE")]
        record_type: StaticType,
        /// Only the record with this content.
        content: Option<String>,
    },
}

/// Runs a record command.
pub(super) fn run(admin: &Admin, command: RecordCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        RecordCommand::Add {
            zone,
            name,
            record_type,
            content,
            ttl,
        } => {
            let zone_name = parse_zone(&zone)?;
            let owner = resolve_owner_name(&zone_name, &name).map_err(anyhow::Error::msg)?;
            let content = normalize_content(record_type, &content).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                i32::try_from(ttl).is_ok(),
                "the TTL must be at most 2147483647"
            );
            store.write(|tx| {
                let zone = zones::get_zone(tx, &zone_name)?;
                records::insert_record(tx, &zone, &owner, record_type, &content, ttl, &timestamp())
            })?;
            // Names may appear (negative caching): drop the zone's cached answers.
            admin.purge(vec![zone_name.to_string()]);
            print_line(&format!("added {owner} {ttl} {record_type} {content}"))
        }
        RecordCommand::List { zone, json } => {
            let zone_name = parse_zone(&zone)?;
            let served = store.read(|conn| {
                let zone = zones::get_zone(conn, &zone_name)?;
                records::zone_records(conn, &zone)
            })?;
            print_listing(
                json,
                &[
                    ("NAME", "name"),
                    ("TTL", "ttl"),
                    ("TYPE", "type"),
                    ("CONTENT", "content"),
                    ("SOURCE", "source"),
                ],
                served.into_iter().map(|record| {
                    vec![
                        record.name.into(),
                        record.ttl.into(),
                        record.record_type.to_string().into(),
                        record.content.into(),
                        record.source.as_str().into(),
                    ]
                }),
            )
        }
        RecordCommand::Remove {
            zone,
            name,
            record_type,
            content,
        } => {
            let zone_name = parse_zone(&zone)?;
            let owner = resolve_owner_name(&zone_name, &name).map_err(anyhow::Error::msg)?;
            let content = content
                .map(|content| normalize_content(record_type, &content))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let removed = store.write(|tx| {
                let zone = zones::get_zone(tx, &zone_name)?;
                records::remove_records(
                    tx,
                    &zone,
                    &owner,
                    record_type,
                    content.as_deref(),
                    &timestamp(),
                )
            })?;
            anyhow::ensure!(removed > 0, "no {record_type} record at {owner} matches");
            admin.purge(vec![zone_name.to_string()]);
            print_line(&format!("removed {removed} record(s)"))
        }
    }
}

/// Parses a zone name argument.
fn parse_zone(zone: &str) -> anyhow::Result<DomainName> {
    zone.parse()
        .with_context(|| format!("invalid zone name {zone:?}"))
}
