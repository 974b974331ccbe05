//! `certadns-ddns tsig ...`: TSIG keys for RFC 2136 clients (`nsupdate`, DHCP servers, ACME
//! clients, external-dns, cert-manager). The secret is printed once, as the key block
//! `nsupdate -k FILE` and BIND read.

use clap::Subcommand;

use super::{Admin, print_line, print_listing};
use crate::auth;
use crate::model::DomainName;
use crate::model::tsig::{DEFAULT_ZONE_KEY_TYPES, TsigAlgorithm, TsigScope, key_file, parse_types};
use crate::store::tsig::{NewTsigKey, create_tsig_key, list_tsig_keys, revoke_tsig_key};
use crate::store::{StoreError, timestamp, users, zones};

/// TSIG key commands.
#[derive(Debug, Subcommand)]
pub(super) enum TsigCommand {
    /// Create a key and print it once, as the key block `nsupdate -k FILE` and BIND read. An
    /// account's key may change what the account may change through /nic/update and /acme/*;
    /// with --zone (or --subtree), an admin's key for a zone's records of --types.
    #[command(group(clap::ArgGroup::new("owner").required(true).args(["account", "zone", "subtree"])))]
    #[command(group(clap::ArgGroup::new("zone_or_subtree").args(["zone", "subtree"])))]
    Create {
        /// The account (username) the key acts for.
        account: Option<String>,
        /// An admin's key for this whole zone.
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
        /// An admin's key for the names at and below this one, in the zone that holds it.
        #[arg(long, value_name = "NAME")]
        subtree: Option<String>,
        /// The record types an admin's key may change, comma-separated.
        #[arg(long, value_name = "TYPES", requires = "zone_or_subtree")]
        types: Option<String>,
        /// The key's name, as clients send it (default: the account or zone, and a random
        /// suffix).
        #[arg(long, value_name = "KEYNAME")]
        name: Option<String>,
        /// hmac-sha256, hmac-sha512, or hmac-sha1 for old clients.
        #[arg(long, default_value = "hmac-sha256")]
        algorithm: TsigAlgorithm,
    },
    /// List the keys (never their secrets), all or one account's.
    List {
        /// Only this account's keys.
        account: Option<String>,
        /// Print a JSON array of objects instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its name: its signatures are refused from then on.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// Runs a TSIG command.
pub(super) fn run(admin: &Admin, command: TsigCommand) -> anyhow::Result<()> {
    let store = &admin.store;
    match command {
        TsigCommand::Create {
            account,
            zone,
            subtree,
            types,
            name,
            algorithm,
        } => {
            let types = types
                .as_deref()
                .map(parse_types)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let name = match name {
                Some(name) => {
                    let parsed: DomainName = name
                        .strip_suffix('.')
                        .unwrap_or(&name)
                        .parse()
                        .map_err(|error| anyhow::anyhow!("--name {name:?}: {error}"))?;
                    Some(parsed.as_str().to_string())
                }
                None => None,
            };
            let secret = auth::generate_tsig_secret(algorithm);
            let key_name = store.write(|tx| {
                let (scope, default_name) = match (&account, &zone, &subtree) {
                    (Some(account), _, _) => {
                        let user = users::get_user(tx, &account.to_ascii_lowercase())?;
                        (TsigScope::Account { user_id: user.id }, user.username)
                    }
                    (None, Some(zone), _) => {
                        let name = zone.trim_end_matches('.').to_ascii_lowercase();
                        let zone = zones::get_zone_by_name(tx, &name)?.ok_or_else(|| {
                            StoreError::NotFound(format!(
                                "no zone {name}; `certadns-ddns zone list` shows the zones"
                            ))
                        })?;
                        (
                            TsigScope::Zone {
                                zone_id: zone.id,
                                subtree: None,
                                types: types.clone().unwrap_or(DEFAULT_ZONE_KEY_TYPES.to_vec()),
                            },
                            zone.name,
                        )
                    }
                    (None, None, Some(subtree)) => {
                        let top: DomainName = subtree
                            .trim_end_matches('.')
                            .parse()
                            .map_err(|error| StoreError::Conflict(format!("--subtree: {error}")))?;
                        let zone =
                            zones::find_enclosing_zone(tx, top.as_str())?.ok_or_else(|| {
                                StoreError::NotFound(format!("{top} is not inside any zone"))
                            })?;
                        (
                            TsigScope::Zone {
                                zone_id: zone.id,
                                subtree: Some(top.as_str().to_string()),
                                types: types.clone().unwrap_or(DEFAULT_ZONE_KEY_TYPES.to_vec()),
                            },
                            top.as_str().to_string(),
                        )
                    }
                    (None, None, None) => {
                        return Err(StoreError::Conflict(
                            "name an account, or --zone or --subtree".into(),
                        ));
                    }
                };
                let key_name = name.clone().unwrap_or_else(|| {
                    let suffix: [u8; 4] = rand::random();
                    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
                    format!("{}-{suffix}", default_name.replace('.', "-"))
                });
                create_tsig_key(
                    tx,
                    &NewTsigKey {
                        name: key_name.clone(),
                        algorithm,
                        secret: secret.clone(),
                        scope,
                    },
                    &timestamp(),
                )?;
                Ok(key_name)
            })?;
            eprintln!(
                "TSIG key {key_name} created; the secret is shown this once: save the block \
                 below as a file for `nsupdate -k FILE`, or paste it into BIND's or Kea's config"
            );
            print_line(key_file(&key_name, algorithm, &secret).trim_end())
        }
        TsigCommand::List { account, json } => {
            let keys = store.read(|conn| {
                let user_id = match &account {
                    Some(name) => Some(users::get_user(conn, &name.to_ascii_lowercase())?.id),
                    None => None,
                };
                list_tsig_keys(conn, user_id)
            })?;
            print_listing(
                json,
                &[
                    ("NAME", "name"),
                    ("ALGORITHM", "algorithm"),
                    ("USER", "user"),
                    ("ZONE", "zone"),
                    ("SUBTREE", "subtree"),
                    ("TYPES", "types"),
                    ("ACTIVE", "active"),
                    ("CREATED", "created_at"),
                    ("LAST_USED", "last_used_at"),
                ],
                keys.into_iter().map(|key| {
                    vec![
                        key.name.into(),
                        key.algorithm.into(),
                        key.user.into(),
                        key.zone.into(),
                        key.subtree.into(),
                        key.types.into(),
                        key.active.into(),
                        key.created_at.into(),
                        key.last_used_at.into(),
                    ]
                }),
            )
        }
        TsigCommand::Revoke { name } => {
            let revoked = store.write(|tx| revoke_tsig_key(tx, &name, &timestamp()))?;
            anyhow::ensure!(revoked, "no active TSIG key named {name}");
            print_line(&format!("revoked TSIG key {name}"))
        }
    }
}
