//! `certadns-ddns history FQDN`: the audit trail of one name.

use std::io::Write as _;

use anyhow::Context as _;

use super::{or_dash, print_line, print_table};
use crate::model::DomainName;
use crate::store::{Store, abuse, audit};

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub(super) struct HistoryArgs {
    /// The name.
    fqdn: String,
    /// At most this many changes, newest first.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print a JSON array of events, newest first: `"event": "change"` with the audit columns,
    /// `"event": "abuse"` for an episode of refused requests.
    #[arg(long)]
    json: bool,
}

/// Runs `history`.
pub(super) fn run(store: &Store, args: HistoryArgs) -> anyhow::Result<()> {
    let fqdn: DomainName = args
        .fqdn
        .parse()
        .with_context(|| format!("invalid name {:?}", args.fqdn))?;
    let (rows, episodes, exists) = store.read(|conn| {
        Ok((
            audit::history(conn, fqdn.as_str(), args.limit)?,
            abuse::episodes(conn, fqdn.as_str(), args.limit)?,
            !crate::store::domains::list_named(conn, &fqdn)?.is_empty(),
        ))
    })?;
    // A typo gets an error, not an empty history (a removed domain keeps its history).
    anyhow::ensure!(
        exists || !rows.is_empty() || !episodes.is_empty(),
        "no domain named {fqdn}, and no history for that name"
    );
    if args.json {
        let mut events: Vec<Event> = rows
            .into_iter()
            .map(|row| Event::Change(Box::new(row)))
            .collect();
        events.extend(episodes.into_iter().map(Event::Abuse));
        // Newest first (stable: a change and an episode of the same millisecond keep this order).
        events.sort_by(|a, b| b.time().cmp(a.time()));
        let mut stdout = std::io::stdout();
        serde_json::to_writer_pretty(&mut stdout, &events)?;
        writeln!(stdout)?;
        return Ok(());
    }
    print_changes(rows)?;
    if !episodes.is_empty() {
        print_line("")?;
        print_episodes(episodes)?;
    }
    Ok(())
}

/// One entry of `history --json`: its fields, with `"event": "change"` or `"abuse"` first.
#[derive(serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Event {
    /// An address change (an audit row).
    Change(Box<audit::AuditRecord>),
    /// An abuse episode.
    Abuse(abuse::EpisodeRecord),
}

impl Event {
    /// When it happened (started).
    fn time(&self) -> &str {
        match self {
            Self::Change(row) => &row.created_at,
            Self::Abuse(episode) => &episode.started_at,
        }
    }
}

/// The address changes, as a table: each address with its country (`CC`) and tags.
fn print_changes(rows: Vec<audit::AuditRecord>) -> anyhow::Result<()> {
    let tags = |tags: &[String]| {
        if tags.is_empty() {
            "-".into()
        } else {
            tags.join(",")
        }
    };
    print_table(
        &[
            "TIME",
            "TYPE",
            "OLD_IP",
            "NEW_IP",
            "CC",
            "TAGS",
            "SOURCE_IP",
            "SOURCE_CC",
            "SOURCE_TAGS",
            "AUTH",
            "USER_AGENT",
        ],
        rows.into_iter().map(|row| {
            vec![
                row.created_at,
                row.record_type,
                or_dash(row.old_ip.as_deref()),
                row.new_ip,
                or_dash(row.country_code.as_deref()),
                tags(&row.ip_tags),
                or_dash(row.source_ip.as_deref()),
                or_dash(row.source_country_code.as_deref()),
                tags(&row.source_ip_tags),
                match row.tsig_key {
                    Some(key) => format!("{}:{key}", row.auth_method),
                    None => row.auth_method,
                },
                or_dash(row.user_agent.as_deref()),
            ]
        }),
    )
}

/// The abuse episodes, as a table: when the host was flagged, how many requests were refused,
/// and until when (a time in the future: still flagged).
fn print_episodes(episodes: Vec<abuse::EpisodeRecord>) -> anyhow::Result<()> {
    print_table(
        &["ABUSE_FROM", "LAST_REFUSED", "REFUSED", "UNTIL", "USER"],
        episodes.into_iter().map(|episode| {
            vec![
                episode.started_at,
                episode.last_refused_at,
                episode.refused.to_string(),
                episode.clears_at,
                episode.username,
            ]
        }),
    )
}
