//! Applying an update: authenticate, find the caller's domain, validate the address, then
//! write the change and its audit row in one transaction.
//!
//! No hyper types here: [`Updater::apply`] takes a parsed [`UpdateRequest`] and the client's
//! addresses and returns a [`ReturnCode`]. Store failures become `dnserr` here, logged with
//! their cause; the detail never reaches the client.

use std::net::IpAddr;
use std::sync::Arc;

use super::request::{ClientAddress, Credentials, UpdateRequest};
use super::response::ReturnCode;
use crate::auth::{self, PasswordCache};
use crate::model::{
    AuthMethod, DomainName, RecordType, SCOPE_DOMAINS_UPDATE, check_family, parse_ip,
};
use crate::store::audit::ChangeContext;
use crate::store::keys::{ApiKey, find_key_by_hash, touch_key};
use crate::store::users::{User, find_user_by_login};
use crate::store::{Store, StoreError, domains, timestamp};

/// An authenticated caller.
#[derive(Debug, Clone)]
struct Principal {
    /// The user acting.
    user_id: i64,
    /// The API key used, if any: its `last_used_at` is set.
    key_id: Option<i64>,
    /// How, for the audit trail.
    method: AuthMethod,
}

/// Applies updates against the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Updater {
    /// The store.
    store: Store,
    /// Recent successful password checks.
    password_cache: Arc<PasswordCache>,
}

impl Updater {
    /// An updater over `store`, remembering password checks in `password_cache`.
    pub fn new(store: Store, password_cache: PasswordCache) -> Self {
        Self {
            store,
            password_cache: Arc::new(password_cache),
        }
    }

    /// Runs one update request to its answer.
    ///
    /// Order, as the product spec gives it: credentials (`badauth`), hostname (`notfqdn`),
    /// address form (`invalid IP address`), ownership (`nohost`), family (400), then the write.
    pub async fn apply(&self, request: UpdateRequest, client: ClientAddress) -> ReturnCode {
        let principal = match self.authenticate(request.credentials).await {
            Ok(principal) => principal,
            Err(code) => return code,
        };
        let Some(hostname) = request
            .hostname
            .as_deref()
            .and_then(|name| name.parse::<DomainName>().ok())
        else {
            return ReturnCode::Notfqdn;
        };
        let ip = match request.myip.as_deref() {
            Some(text) => match parse_ip(text) {
                Ok(ip) => ip.to_canonical(),
                Err(error) => return ReturnCode::BadAddress(error),
            },
            None => client.source,
        };
        let context = ChangeContext {
            source_ip: Some(client.source),
            peer_ip: Some(client.peer),
            user_agent: request.user_agent,
            auth_method: principal.method,
        };
        let result = self
            .store
            .write_blocking(move |tx| write_update(tx, &principal, &hostname, ip, &context))
            .await;
        result.unwrap_or_else(|error| {
            tracing::error!(%error, "update not applied: store failure");
            ReturnCode::Dnserr
        })
    }

    /// Checks the credentials: `Err` holds the answer for a failure.
    async fn authenticate(
        &self,
        credentials: Option<Credentials>,
    ) -> Result<Principal, ReturnCode> {
        match credentials {
            None | Some(Credentials::Malformed) => Err(ReturnCode::Badauth),
            Some(Credentials::Bearer(key)) => {
                if !auth::looks_like_api_key(&key) {
                    return Err(ReturnCode::Badauth);
                }
                let hash = auth::hash_api_key(&key);
                let found = self
                    .store
                    .read_blocking(move |conn| find_key_by_hash(conn, &hash))
                    .await
                    .map_err(store_failure)?;
                match found {
                    Some((key, user)) if key_may_update(&key, &user) => Ok(Principal {
                        user_id: user.id,
                        key_id: Some(key.id),
                        method: AuthMethod::Bearer,
                    }),
                    _ => Err(ReturnCode::Badauth),
                }
            }
            Some(Credentials::Password {
                method,
                login,
                password,
            }) => self.authenticate_password(method, login, password).await,
        }
    }

    /// Checks a login with an account password or one of that user's API keys.
    async fn authenticate_password(
        &self,
        method: AuthMethod,
        login: String,
        password: String,
    ) -> Result<Principal, ReturnCode> {
        let key_hash = auth::looks_like_api_key(&password).then(|| auth::hash_api_key(&password));
        let (user, key) = self
            .store
            .read_blocking(move |conn| {
                let user = find_user_by_login(conn, &login)?;
                let key = match key_hash {
                    Some(hash) => find_key_by_hash(conn, &hash)?,
                    None => None,
                };
                Ok((user, key))
            })
            .await
            .map_err(store_failure)?;

        let Some(user) = user.filter(|user| user.is_active) else {
            // Spend the same time as a real check, so that unknown users cannot be told apart.
            run_blocking(move || auth::verify_password_of_nobody(&password)).await?;
            return Err(ReturnCode::Badauth);
        };
        if let Some((key, owner)) = key.filter(|(key, _)| key.user_id == user.id) {
            return if key_may_update(&key, &owner) {
                Ok(Principal {
                    user_id: user.id,
                    key_id: Some(key.id),
                    method,
                })
            } else {
                Err(ReturnCode::Badauth)
            };
        }
        let principal = Principal {
            user_id: user.id,
            key_id: None,
            method,
        };
        if self
            .password_cache
            .contains(user.id, &password, &user.password_hash)
        {
            return Ok(principal);
        }
        let cache = Arc::clone(&self.password_cache);
        let verified = run_blocking(move || {
            let verified = auth::verify_password(&password, &user.password_hash);
            if verified {
                cache.insert(user.id, &password, &user.password_hash);
            }
            verified
        })
        .await?;
        if verified {
            Ok(principal)
        } else {
            Err(ReturnCode::Badauth)
        }
    }
}

/// Whether `key`, owned by `owner`, may update domains: active key, active owner on a plan that
/// allows keys, scope `domains:update`.
fn key_may_update(key: &ApiKey, owner: &User) -> bool {
    key.is_active
        && owner.is_active
        && owner.plan.allows_api_keys()
        && key.has_scope(SCOPE_DOMAINS_UPDATE)
}

/// The write transaction of an authenticated update.
fn write_update(
    tx: &rusqlite::Transaction<'_>,
    principal: &Principal,
    hostname: &DomainName,
    ip: IpAddr,
    context: &ChangeContext,
) -> Result<ReturnCode, StoreError> {
    let now = timestamp();
    if let Some(key_id) = principal.key_id {
        touch_key(tx, key_id, &now)?;
    }
    let owned = domains::find_owned_domains(tx, principal.user_id, hostname.as_str())?;
    let Some(domain) = owned
        .iter()
        .find(|domain| domain.record_type == RecordType::of(ip))
    else {
        return Ok(match owned.first() {
            None => ReturnCode::Nohost,
            Some(other) => ReturnCode::BadAddress(
                check_family(other.record_type, ip).expect_err("no domain of the address's family"),
            ),
        });
    };
    let ip_text = ip.to_string();
    if domain.ip.as_deref() == Some(ip_text.as_str()) {
        domains::touch_checked(tx, domain.id, &now)?;
        return Ok(ReturnCode::Nochg(ip));
    }
    domains::change_address(tx, domain, ip, context, &now)?;
    Ok(ReturnCode::Good(ip))
}

/// Logs a store failure during authentication and answers `dnserr`.
fn store_failure(error: StoreError) -> ReturnCode {
    tracing::error!(%error, "authentication not possible: store failure");
    ReturnCode::Dnserr
}

/// Runs CPU-heavy work (argon2) on the blocking pool.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReturnCode> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "password check task failed");
        ReturnCode::Dnserr
    })
}
