//! The verbs of the account holder's pages (`dashboard`): sessions, the user's domains, their
//! history, their API keys. Plain reads and small writes on the store; none of them is on the
//! update or lookup path, so nothing here is memoised.

use super::Served;
use crate::model::SCOPE_DOMAINS_UPDATE;
use crate::store::audit::{AuditRecord, PageStart, owned_history_page};
use crate::store::domains::{Domain, list_domains};
use crate::store::keys::{
    ApiKey, KeyCreator, KeyRefusal, NewKey, any_revoked_before, create_key, list_keys,
    prune_revoked, revoke_own_key,
};
use crate::store::sessions::{NewSession, end_session, open_session, session_user};
use crate::store::users::User;
use crate::store::{StoreError, timestamp, timestamp_at};
use crate::update_help::Subject;

impl Served {
    /// Stores a session for `user_id` that ends `lifetime` from now.
    pub async fn open_session(
        &self,
        token_hash: String,
        user_id: i64,
        lifetime: std::time::Duration,
        source_ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now();
        let (created_at, expires_at) = (timestamp_at(now), timestamp_at(now + lifetime));
        self.write(move |tx| {
            open_session(
                tx,
                &NewSession {
                    token_hash: &token_hash,
                    user_id,
                    created_at: &created_at,
                    expires_at: &expires_at,
                    source_ip: source_ip.as_deref(),
                    user_agent: user_agent.as_deref(),
                },
            )
        })
        .await
    }

    /// The active user of the unexpired session `token_hash`.
    pub fn session_user(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        self.store
            .read(|conn| session_user(conn, token_hash, &timestamp()))
    }

    /// Ends the session `token_hash`.
    pub async fn end_session(&self, token_hash: String) -> Result<bool, StoreError> {
        self.write(move |tx| end_session(tx, &token_hash)).await
    }

    /// The domains of `user_id`, by name and type.
    pub fn user_domains(&self, user_id: i64) -> Result<Vec<Domain>, StoreError> {
        self.read(|conn| list_domains(conn, Some(user_id)))
    }

    /// One page of the audit rows of `user`'s domains at `fqdn`; `None` when the user holds no
    /// domain of that name (whoever else may).
    pub fn user_history(
        &self,
        user_id: i64,
        fqdn: &str,
        start: PageStart,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        self.read(|conn| {
            let owned = list_domains(conn, Some(user_id))?
                .iter()
                .any(|domain| domain.fqdn == fqdn);
            if !owned {
                return Ok(None);
            }
            owned_history_page(conn, user_id, fqdn, start, limit).map(Some)
        })
    }

    /// What the Update Help of `user`'s `fqdn` says; `None` when the user holds no such domain.
    pub fn help_subject(&self, user: &User, fqdn: &str) -> Result<Option<Subject>, StoreError> {
        self.read(|conn| {
            let types: Vec<_> = list_domains(conn, Some(user.id))?
                .into_iter()
                .filter(|domain| domain.fqdn == fqdn)
                .map(|domain| domain.record_type)
                .collect();
            if types.is_empty() {
                return Ok(None);
            }
            let key_prefixes = list_keys(conn, Some(user.id))?
                .into_iter()
                .filter(|(key, _)| key.is_active && key.has_scope(SCOPE_DOMAINS_UPDATE))
                .map(|(key, _)| key.prefix)
                .collect();
            Ok(Some(Subject {
                fqdn: fqdn.to_string(),
                types,
                owner: user.username.clone(),
                plan: user.plan,
                key_prefixes,
            }))
        })
    }

    /// `user_id`'s TSIG keys (RFC 2136), without their secrets.
    pub fn user_tsig_keys(
        &self,
        user_id: i64,
    ) -> Result<Vec<crate::model::tsig::TsigKeyListing>, StoreError> {
        self.store
            .read(|conn| crate::store::tsig::list_tsig_keys(conn, Some(user_id)))
    }

    /// `user_id`'s API keys, newest first.
    pub fn user_keys(&self, user_id: i64) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|conn| {
            Ok(list_keys(conn, Some(user_id))?
                .into_iter()
                .map(|(key, _)| key)
                .collect())
        })
    }

    /// Stores a new key of `user` (by prefix and hash) with `scopes`, as the account holder
    /// asks it on the pages (see [`create_key`]: the plan, the caps and the pace).
    pub async fn create_user_key(
        &self,
        user: &User,
        prefix: String,
        hash: String,
        scopes: Vec<String>,
        retention: std::time::Duration,
    ) -> Result<(), KeyRefusal> {
        if !user.plan.allows_api_keys() {
            return Err(KeyRefusal::FreePlan);
        }
        let key = NewKey {
            user_id: user.id,
            prefix,
            hash,
            scopes,
            by: KeyCreator::Account,
        };
        self.write(move |tx| {
            Ok(create_key(
                tx,
                &key,
                std::time::SystemTime::now(),
                retention,
            ))
        })
        .await?
        .map(|_| ())
    }

    /// Deletes every key revoked more than `retention` ago; how many (a read first: nothing
    /// is written when there is none).
    pub async fn prune_revoked_keys(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let before = timestamp_at(std::time::SystemTime::now() - retention);
        if !self.read(|conn| any_revoked_before(conn, &before))? {
            return Ok(0);
        }
        self.write(move |tx| prune_revoked(tx, None, &before)).await
    }

    /// Revokes `user_id`'s key `key_id`; whether they have such a key.
    pub async fn revoke_user_key(&self, user_id: i64, key_id: i64) -> Result<bool, StoreError> {
        self.write(move |tx| revoke_own_key(tx, user_id, key_id, &timestamp()))
            .await
    }
}
