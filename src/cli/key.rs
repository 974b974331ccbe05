//! `certadns-ddns key ...`: API keys. The key is printed once, at creation; only its hash is
//! stored.

use std::time::SystemTime;

use clap::Subcommand;

use super::{Admin, print_line, print_listing};
use crate::auth;
use crate::model::{SCOPE_DOMAINS_UPDATE, validate_scope};
use crate::store::keys::{KeyCreator, KeyRefusal, NewKey};
use crate::store::{keys, timestamp, users};

/// Key commands.
#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Create a key for a user on a paid plan; prints the key alone on stdout, once.
    Create {
        /// Owner's username.
        user: String,
        /// Scope granted (repeat for several).
        #[arg(long = "scope", value_name = "SCOPE", default_value = SCOPE_DOMAINS_UPDATE)]
        scopes: Vec<String>,
    },
    /// List keys (prefixes only), all or one user's.
    List {
        /// Only this user's keys.
        user: Option<String>,
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, given whole or by its listed prefix.
    Revoke {
        /// The key (ak_...) or its prefix as `key list` shows it.
        key_or_prefix: String,
    },
}

/// Runs a key command.
pub(super) fn run(admin: &Admin, command: KeyCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        KeyCommand::Create { user, scopes } => {
            for scope in &scopes {
                validate_scope(scope).map_err(anyhow::Error::msg)?;
            }
            let key = auth::generate_api_key();
            let retention = admin.config.limits.revoked_key_retention;
            let (owner, created) = store.write(|tx| {
                let owner = users::get_user(tx, &user.to_ascii_lowercase())?;
                let new = NewKey {
                    user_id: owner.id,
                    prefix: key.prefix.clone(),
                    hash: key.hash.clone(),
                    scopes: scopes.clone(),
                    by: KeyCreator::Admin,
                };
                let created = match keys::create_key(tx, &new, SystemTime::now(), retention) {
                    Err(KeyRefusal::Store(error)) => return Err(error),
                    other => other,
                };
                Ok((owner.username, created))
            })?;
            match created {
                Ok(_) => print_line(&key.secret),
                Err(KeyRefusal::FreePlan) => anyhow::bail!(
                    "user {owner} is on the free plan, and API keys need plus, pro or elite; \
                     move them with `certadns-ddns user plan {owner} plus`, or let them use \
                     their account password"
                ),
                Err(KeyRefusal::TooMany(active)) => anyhow::bail!(
                    "user {owner} holds {active} active keys, the most allowed; revoke one \
                     first (`certadns-ddns key list {owner}`, then `key revoke PREFIX`)"
                ),
                Err(refusal) => Err(refusal.into()),
            }
        }
        KeyCommand::List { user, json } => {
            let keys = store.read(|conn| {
                let user_id = match &user {
                    Some(name) => Some(users::get_user(conn, &name.to_ascii_lowercase())?.id),
                    None => None,
                };
                keys::list_keys(conn, user_id)
            })?;
            print_listing(
                json,
                &[
                    ("PREFIX", "prefix"),
                    ("USER", "user"),
                    ("SCOPES", "scopes"),
                    ("ACTIVE", "active"),
                    ("CREATED", "created_at"),
                    ("LAST_USED", "last_used_at"),
                ],
                keys.into_iter().map(|(key, owner)| {
                    vec![
                        key.prefix.into(),
                        owner.into(),
                        key.scopes.into(),
                        key.is_active.into(),
                        key.created_at.into(),
                        key.last_used_at.into(),
                    ]
                }),
            )
        }
        KeyCommand::Revoke { key_or_prefix } => {
            let hash = auth::hash_api_key(&key_or_prefix);
            let prefix = auth::api_key_prefix(&key_or_prefix).to_string();
            let revoked = store.write(|tx| keys::revoke_key(tx, &hash, &prefix, &timestamp()))?;
            print_line(&format!("revoked {revoked}"))
        }
    }
}
