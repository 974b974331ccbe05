//! `certadns-ddns history FQDN`: the audit trail of one name.

use std::io::Write as _;

use anyhow::Context as _;

use super::{or_dash, print_table};
use crate::model::DomainName;
use crate::store::{Store, audit};

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub(super) struct HistoryArgs {
    /// The name.
    fqdn: String,
    /// At most this many changes, newest first.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print a JSON array of objects with the audit columns.
    #[arg(long)]
    json: bool,
}

/// Runs `history`.
pub(super) fn run(store: &Store, args: HistoryArgs) -> anyhow::Result<()> {
    let fqdn: DomainName = args
        .fqdn
        .parse()
        .with_context(|| format!("invalid name {:?}", args.fqdn))?;
    let rows = store.read(|conn| audit::history(conn, fqdn.as_str(), args.limit))?;
    if args.json {
        let mut stdout = std::io::stdout();
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
        return Ok(());
    }
    print_table(
        &[
            "TIME",
            "TYPE",
            "OLD_IP",
            "NEW_IP",
            "SOURCE_IP",
            "AUTH",
            "TAGS",
            "USER_AGENT",
        ],
        rows.into_iter().map(|row| {
            vec![
                row.created_at,
                row.record_type,
                or_dash(row.old_ip.as_deref()),
                row.new_ip,
                or_dash(row.source_ip.as_deref()),
                row.auth_method,
                if row.ip_tags.is_empty() {
                    "-".into()
                } else {
                    row.ip_tags.join(",")
                },
                or_dash(row.user_agent.as_deref()),
            ]
        }),
    )
}
