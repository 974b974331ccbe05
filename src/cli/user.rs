//! `certadns-ddns user ...`: accounts, plans and passwords.

use clap::Subcommand;

use super::{Admin, print_line, print_listing, read_password_stdin};
use crate::auth;
use crate::model::{Plan, normalize_email, normalize_username};
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
