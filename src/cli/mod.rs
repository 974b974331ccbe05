//! The command line: `serve` and the admin commands, one file per noun.
//!
//! Admin commands work directly on the SQLite file (only `init` and `serve` create a missing
//! one, from `schema.sql`; the others fail naming it), so they can run while `serve` runs: WAL lets both at once, and the daemon
//! reads every answer from the store. Output is for people and scripts alike: listings are
//! aligned columns with a header; secrets are printed once, alone on stdout. Errors are one
//! line on stderr (printed by `main`) and a non-zero exit.

mod backup;
mod domain;
mod help;
mod history;
mod key;
mod record;
mod transfer;
mod tsig;
mod user;
mod zone;

use std::io::{Read as _, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigSource};
use crate::purge::Purger;
use crate::store::{Store, StoreOptions};

/// The version and the commit it was built from (`--version`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CERTADNS_COMMIT"),
    ")"
);

/// Dynamic DNS update server (dyndns2) with a PowerDNS-ready SQLite store.
#[derive(Debug, Parser)]
#[command(name = "certadns-ddns", version = VERSION, about)]
pub struct Args {
    /// SQLite database file; `init` and `serve` create it from schema.sql when missing, the
    /// other commands need it [default: `database` of the --config file (relative to the
    /// file's folder), else ./certadns.db].
    #[arg(long, global = true, env = "CERTADNS_DB", value_name = "PATH")]
    db: Option<PathBuf>,

    /// TOML config file (see examples/config.toml). `serve` runs with it; admin commands take
    /// the database and the pdns front-ends to purge after changes from it.
    #[arg(long, global = true, env = "CERTADNS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Zones served (add, set, remove, secure, ds, keys, list).
    #[command(subcommand)]
    Zone(zone::ZoneCommand),
    /// Accounts (add, plan, password, disable, enable, import, export, remove, blocked, unlock,
    /// list).
    #[command(subcommand)]
    User(user::UserCommand),
    /// API keys (create, list, revoke).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// TSIG keys for RFC 2136 clients (create, list, revoke), checked by the listener of
    /// `[listeners] update-dns-listen`.
    #[command(subcommand)]
    Tsig(tsig::TsigCommand),
    /// DDNS domains (add, set, remove, import, export, list).
    #[command(subcommand)]
    Domain(domain::DomainCommand),
    /// Static records in a zone (add, list, remove).
    #[command(subcommand)]
    Record(record::RecordCommand),
    /// A domain's address changes, newest first.
    History(history::HistoryArgs),
    /// How to update a domain: cURL commands, router settings, compatible routers.
    UpdateHelp(help::HelpArgs),
    /// Create the database from schema.sql if it is missing (the other admin commands need it;
    /// `serve` creates it too).
    Init,
    /// Write a consistent copy of the database, also while `serve` runs.
    Backup(backup::BackupArgs),
    /// Run the update service.
    Serve(ServeArgs),
    /// Carry pdns's `pipe` connector to a backend on another host (see pdns-conf/).
    Relay(RelayArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
}

/// Options of `relay`.
#[derive(Debug, clap::Args)]
struct RelayArgs {
    /// `backend-tcp-listen` of the `serve` to relay to, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// How long a request may wait for the backend (retrying) before pdns gets an error
    /// [default: three quarters of the pdns connector's timeout].
    #[arg(long, value_name = "MS")]
    wait_ms: Option<u64>,
}

/// Options of `serve`; each overrides the config file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the DynDNS update endpoints [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the PowerDNS backend's HTTP connector [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    backend_listen: Option<SocketAddr>,
    /// Path of the PowerDNS backend's unix socket [default: none].
    #[arg(long, value_name = "PATH")]
    backend_socket: Option<PathBuf>,
}

/// What admin commands work with: the store, and the pdns front-ends whose caches are purged
/// after a change to what DNS serves.
pub(super) struct Admin {
    /// The store.
    store: Store,
    /// The config (for `update-help`'s public URL).
    config: Config,
    /// Purges pdns's caches, on a runtime of its own (the CLI is otherwise synchronous);
    /// None when no `[[pdns.api]]` is configured.
    purger: Option<(Purger, tokio::runtime::Runtime)>,
}

impl Admin {
    /// Asks every configured pdns to drop its cached answers for `names` (and below), retrying
    /// failed calls a few times. A failure is reported as a warning, never as an error: the
    /// change is committed, and pdns's cache TTL bounds how long the old answer can last.
    fn purge(&self, names: Vec<String>) {
        if let Some((purger, runtime)) = &self.purger {
            runtime.block_on(purger.purge_with_retries(names));
        }
    }
}

/// Runs the parsed command line.
pub fn run(args: Args) -> anyhow::Result<()> {
    let command = match args.command {
        Command::Serve(serve) => {
            return run_serve(ConfigSource {
                file: args.config,
                database: args.db,
                listen: serve.listen,
                backend_listen: serve.backend_listen,
                backend_socket: serve.backend_socket,
            });
        }
        command => command,
    };
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(db) = args.db {
        config.store.database = db;
    }
    let command = match command {
        // Before the store is opened: a backup copies the file as it is, never migrating it.
        Command::Backup(args) => {
            crate::log::init("warn", crate::log::LogFormat::Text);
            return backup::run(&config, &args);
        }
        Command::Completions { shell } => {
            let mut command = <Args as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "certadns-ddns", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            // The package version only: the page is kept in dist/ and must not change with
            // every commit.
            let command =
                <Args as clap::CommandFactory>::command().version(env!("CARGO_PKG_VERSION"));
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            return Ok(());
        }
        Command::Relay(relay) => {
            return crate::relay::run(&crate::relay::RelayOptions {
                connect: relay.connect,
                wait: relay.wait_ms.map(std::time::Duration::from_millis),
            })
            .context("relay failed");
        }
        command => command,
    };
    crate::log::init("warn", crate::log::LogFormat::Text);
    let path = config.store.database.clone();
    let init = matches!(command, Command::Init);
    let existed = path.exists();
    let options = StoreOptions {
        create_missing: init,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, &options).map_err(|error| match error {
        missing @ crate::store::StoreError::Missing(_) => anyhow::Error::new(missing),
        error => {
            anyhow::Error::new(error).context(format!("cannot open database {}", path.display()))
        }
    })?;
    if init {
        let shown = std::path::absolute(&path).unwrap_or(path);
        store.close();
        return print_line(&if existed {
            format!(
                "database {} exists; its schema is up to date",
                shown.display()
            )
        } else {
            format!("created database {}", shown.display())
        });
    }
    let admin = Admin {
        store,
        purger: match Purger::new(&config.pdns.api) {
            Some(purger) => Some((
                purger,
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the runtime for pdns cache purges")?,
            )),
            None => None,
        },
        config,
    };
    let result = match command {
        Command::Zone(command) => zone::run(&admin, command),
        Command::User(command) => user::run(&admin, command),
        Command::Key(command) => key::run(&admin, command),
        Command::Tsig(command) => tsig::run(&admin, command),
        Command::Domain(command) => domain::run(&admin, command),
        Command::Record(command) => record::run(&admin, command),
        Command::History(command) => history::run(&admin.store, command),
        Command::UpdateHelp(command) => help::run(&admin.store, &admin.config, command),
        Command::Serve(_)
        | Command::Relay(_)
        | Command::Backup(_)
        | Command::Init
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled above")
        }
    };
    // Every connection closed before the process exits: the file alone then holds every change.
    admin.store.close();
    result
}

/// `serve`: reads the configuration from `source`, runs the daemon on a multi-threaded runtime
/// (SIGHUP reads `source` again).
fn run_serve(source: ConfigSource) -> anyhow::Result<()> {
    let config = source.load()?;
    let log = crate::log::init(&config.log_level.0, config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::daemon::run(config, source, log))?;
    Ok(())
}

/// Reads a secret from standard input: everything, less one trailing newline. On a terminal,
/// a prompt without echo, asked twice (a typo there would lock the user out).
fn read_password_stdin() -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let second = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        anyhow::ensure!(
            first == second,
            "the two passwords differ; nothing was changed"
        );
        anyhow::ensure!(
            first.chars().count() >= 8,
            "the password must have at least 8 characters"
        );
        return Ok(first);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&input);
    anyhow::ensure!(
        password.chars().count() >= 8,
        "the password must have at least 8 characters"
    );
    Ok(password.to_string())
}

/// Prints rows as aligned columns under `header`.
fn print_table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> anyhow::Result<()> {
    let mut table = tabwriter::TabWriter::new(std::io::stdout()).padding(2);
    writeln!(table, "{}", header.join("\t"))?;
    for row in rows {
        writeln!(table, "{}", row.join("\t"))?;
    }
    table.flush()?;
    Ok(())
}

/// Prints a listing: aligned columns under the headers for people, or with `json` an array of
/// objects with the keys for scripts (`--json`). Each column is (HEADER, key); each cell a JSON
/// value, shown in the table as text (`-` for null or an empty list, lists joined by `,`,
/// booleans as yes/no).
fn print_listing(
    json: bool,
    columns: &[(&str, &str)],
    rows: impl IntoIterator<Item = Vec<serde_json::Value>>,
) -> anyhow::Result<()> {
    use serde_json::Value;
    if json {
        let objects: Vec<serde_json::Map<String, Value>> = rows
            .into_iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|(_, key)| (*key).to_string())
                    .zip(row)
                    .collect()
            })
            .collect();
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &objects)?;
        writeln!(stdout)?;
        return Ok(());
    }
    fn text(value: Value) -> String {
        match value {
            Value::Null => "-".into(),
            Value::String(text) => text,
            Value::Bool(yes) => if yes { "yes" } else { "no" }.into(),
            Value::Array(items) if items.is_empty() => "-".into(),
            Value::Array(items) => items.into_iter().map(text).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        }
    }
    let header: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
    print_table(
        &header,
        rows.into_iter()
            .map(|row| row.into_iter().map(text).collect()),
    )
}

/// Prints one line on stdout.
fn print_line(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "{line}")?;
    Ok(())
}

/// `-` for an absent value in listings.
fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}
