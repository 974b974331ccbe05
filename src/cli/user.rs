//! `certadns-ddns user ...`: accounts, plans and passwords.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::{Admin, print_line, print_listing, read_password_stdin};
use crate::auth;
use crate::model::{Plan, normalize_email, normalize_username};
use crate::store::logins::{self, Blocked};
use crate::store::{Store, domains, timestamp, users};

/// User commands.
#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name: letters, digits, '.', '_' or '-'.
        name: String,
        /// Email address; also accepted as login.
        #[arg(long)]
        email: String,
        /// Plan: free, plus, pro or elite.
        #[arg(long, default_value = "free")]
        plan: Plan,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's plan; the TTL of their records follows at once.
    Plan {
        /// Username.
        name: String,
        /// free, plus, pro or elite.
        plan: Plan,
    },
    /// Set a user's password, read from standard input.
    Password {
        /// Username.
        name: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user: every password login and API key of theirs stops working.
    Disable {
        /// Username.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Username.
        name: String,
    },
    /// Import users from a CSV (header username,email,plan,password_hash) or JSON Lines file;
    /// hashes are argon2 PHC strings, kept as they are.
    Import(super::transfer::ImportArgs),
    /// Write every user to standard output as CSV (username,email,plan,password_hash) or JSON
    /// Lines, as `user import` reads them. The hashes are in it: keep the file as secret as
    /// the store.
    Export {
        /// csv or jsonl.
        #[arg(long, value_enum, default_value = "csv")]
        format: super::transfer::Format,
    },
    /// Remove a user with their keys and sessions; refused while they own DDNS domains,
    /// unless --with-domains.
    Remove {
        /// Username.
        name: String,
        /// Remove their DDNS domains with them (the history stays).
        #[arg(long)]
        with_domains: bool,
    },
    /// List the logins blocked now by the password-guessing throttle (accounts and client
    /// addresses), as the running service noted them.
    Blocked {
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Lift the login block of an account (its username or email may be tried again at once),
    /// or of a client address with --client; the running service applies it within a second.
    #[command(group(clap::ArgGroup::new("subject").required(true).args(["name", "client"])))]
    Unlock {
        /// Username.
        name: Option<String>,
        /// A client address instead (as `user blocked` shows it).
        #[arg(long, value_name = "ADDRESS")]
        client: Option<std::net::IpAddr>,
    },
    /// List the users.
    List {
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a user command.
pub(super) fn run(admin: &Admin, command: UserCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        UserCommand::Add {
            name, email, plan, ..
        } => {
            let username = normalize_username(&name).map_err(anyhow::Error::msg)?;
            let email = normalize_email(&email).map_err(anyhow::Error::msg)?;
            let password_hash = auth::hash_password(&read_password_stdin()?)?;
            store.write(|tx| {
                users::insert_user(tx, &username, &email, &password_hash, plan, &timestamp())
            })?;
            print_line(&format!("added user {username} ({plan})"))
        }
        UserCommand::Plan { name, plan } => {
            let names = store.write(|tx| {
                let user = users::get_user(tx, &name.to_ascii_lowercase())?;
                users::set_plan(tx, user.id, plan, &timestamp())?;
                let domains = domains::list_domains(tx, Some(user.id))?;
                Ok(domains
                    .into_iter()
                    .map(|domain| domain.fqdn)
                    .collect::<Vec<_>>())
            })?;
            // The TTL of the user's records follows the plan: drop their cached answers.
            admin.purge(names);
            print_line(&format!("user {name} is now on the {plan} plan"))
        }
        UserCommand::Password { name, .. } => {
            let password_hash = auth::hash_password(&read_password_stdin()?)?;
            store.write(|tx| {
                let user = users::get_user(tx, &name.to_ascii_lowercase())?;
                users::set_password_hash(tx, user.id, &password_hash, &timestamp())
            })?;
            print_line(&format!("password of {name} changed"))
        }
        UserCommand::Disable { name } => set_active(store, &name, false),
        UserCommand::Enable { name } => set_active(store, &name, true),
        UserCommand::Import(args) => {
            super::transfer::import_users(admin, &args.file, args.format, args.skip_invalid)
        }
        UserCommand::Export { format } => super::transfer::export_users(admin, format),
        UserCommand::Remove { name, with_domains } => {
            let zones = store.write(|tx| {
                let user = users::get_user(tx, &name.to_ascii_lowercase())?;
                users::remove_user(tx, user.id, with_domains, &timestamp())
            })?;
            if !zones.is_empty() {
                admin.purge(zones);
            }
            print_line(&format!("removed user {name}"))
        }
        UserCommand::Blocked { json } => list_blocked(admin, json),
        UserCommand::Unlock { name, client } => unlock(admin, name.as_deref(), client),
        UserCommand::List { json } => {
            let users = store.read(users::list_users)?;
            print_listing(
                json,
                &[
                    ("USERNAME", "username"),
                    ("EMAIL", "email"),
                    ("PLAN", "plan"),
                    ("ACTIVE", "active"),
                    ("CREATED", "created_at"),
                ],
                users.into_iter().map(|user| {
                    vec![
                        user.username.into(),
                        user.email.into(),
                        user.plan.to_string().into(),
                        user.is_active.into(),
                        user.created_at.into(),
                    ]
                }),
            )
        }
    }
}

/// `user disable` / `user enable`.
fn set_active(store: &Store, name: &str, active: bool) -> anyhow::Result<()> {
    store.write(|tx| {
        let user = users::get_user(tx, &name.to_ascii_lowercase())?;
        users::set_active(tx, user.id, active, &timestamp())
    })?;
    print_line(&format!(
        "user {name} {}",
        if active { "enabled" } else { "disabled" }
    ))
}

/// `user blocked`.
fn list_blocked(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let database = &admin.config.store.database;
    let blocks = if crate::daemon::serving_process(database).is_some() {
        admin
            .store
            .read(|conn| logins::list_blocks(conn, &timestamp()))?
    } else {
        // Blocks live in the service's memory: with none running, nothing is blocked (the
        // next start begins with none), whatever rows a stopped one left.
        eprintln!(
            "no `certadns-ddns serve` runs on {}: nothing is blocked",
            database.display()
        );
        Vec::new()
    };
    print_listing(
        json,
        &[
            ("ACCOUNT", "username"),
            ("CLIENT", "client"),
            ("FAILURES", "failures"),
            ("SINCE", "blocked_at"),
            ("UNTIL", "blocked_until"),
            ("UNLOCK REQUESTED", "unlock_requested_at"),
        ],
        blocks.into_iter().map(|block| {
            vec![
                block.username.into(),
                block.client.into(),
                block.failures.into(),
                block.blocked_at.into(),
                block.blocked_until.into(),
                block.unlock_requested_at.into(),
            ]
        }),
    )
}

/// How long `user unlock` waits for the running service to lift a block (it reads the
/// requests every second).
const UNLOCK_WAIT: Duration = Duration::from_secs(5);

/// `user unlock`: asks the running service to lift a block, through the store (the one
/// channel the CLI and the service share), and waits until it has.
fn unlock(admin: &Admin, name: Option<&str>, client: Option<IpAddr>) -> anyhow::Result<()> {
    let store = &admin.store;
    let (subject, label) = match (name, client) {
        (Some(name), _) => {
            let user = store.read(|conn| users::get_user(conn, &name.to_ascii_lowercase()))?;
            (Blocked::Account(user.id), format!("user {}", user.username))
        }
        (None, Some(address)) => (Blocked::Client(address), format!("client {address}")),
        (None, None) => anyhow::bail!("name a user, or a client address with --client"),
    };
    let database = &admin.config.store.database;
    let Some(pid) = crate::daemon::serving_process(database) else {
        store.write(|tx| logins::delete_block(tx, subject))?;
        return print_line(&format!(
            "{label} is not blocked: no `certadns-ddns serve` runs on {}, and a start begins \
             with no blocks",
            database.display()
        ));
    };
    let Some(block) = store.write(|tx| logins::request_unlock(tx, subject, &timestamp()))? else {
        return print_line(&format!(
            "{label} is not blocked{}",
            if client.is_none() {
                " (`certadns-ddns user blocked` lists the client addresses that are)"
            } else {
                ""
            }
        ));
    };
    let asked = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match store.read(|conn| logins::block_of(conn, subject, &timestamp()))? {
            None => break,
            Some(now) if now.unlock_requested_at.is_none() => anyhow::bail!(
                "{label} was blocked again before the service lifted the block ({} failures \
                 since {}): run `certadns-ddns user unlock` again once the failures stop",
                now.failures,
                now.blocked_at
            ),
            Some(_) if asked.elapsed() > UNLOCK_WAIT => anyhow::bail!(
                "asked process {pid} to lift the block of {label}, but it has not within {} s; \
                 it lifts it when it reads the request (`certadns-ddns user blocked` shows it \
                 pending)",
                UNLOCK_WAIT.as_secs()
            ),
            Some(_) => {}
        }
    }
    print_line(&format!(
        "unlocked {label} (blocked since {} after {} failures, until {})",
        block.blocked_at, block.failures, block.blocked_until
    ))
}
