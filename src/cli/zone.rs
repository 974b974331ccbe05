//! `certadns-ddns zone ...`: the zones served.

use anyhow::Context as _;
use clap::Subcommand;

use super::{print_line, print_table};
use crate::model::DomainName;
use crate::store::zones::SoaTimers;
use crate::store::{Store, timestamp, zones};

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
    },
    /// List the zones.
    List,
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
pub(super) fn run(store: &Store, command: ZoneCommand) -> anyhow::Result<()> {
    match command {
        ZoneCommand::Add {
            name,
            nameservers,
            hostmaster,
            timers,
        } => {
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
                zones::insert_zone(
                    tx,
                    &zone,
                    &nameservers,
                    hostmaster.as_ref(),
                    timers,
                    &timestamp(),
                )
            })?;
            print_line(&format!(
                "added zone {zone}; with pdns running, `pdns_control rediscover` makes it answerable now"
            ))
        }
        ZoneCommand::List => {
            let zones = store.read(zones::list_zones)?;
            print_table(
                &["ZONE", "SERIAL", "NAMESERVERS", "HOSTMASTER"],
                zones.into_iter().map(|zone| {
                    vec![
                        zone.name,
                        zone.serial.to_string(),
                        zone.nameservers.join(","),
                        zone.hostmaster,
                    ]
                }),
            )
        }
    }
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
