//! The verbs of the ACME DNS-01 endpoints: challenge values set, removed and expired, each in
//! the group commit, served at once by the index (its triggers log the name).

use std::time::{Duration, SystemTime};

use super::Served;
use crate::model::DomainName;
use crate::store::challenges::{self, ChallengeOutcome};
use crate::store::{StoreError, timestamp, timestamp_at};

impl Served {
    /// Adds `value` at `_acme-challenge.<host>` for `user_id` (who must own `host`) for
    /// `lifetime`.
    pub async fn present_challenge(
        &self,
        user_id: i64,
        host: DomainName,
        value: String,
        lifetime: Duration,
    ) -> Result<ChallengeOutcome, StoreError> {
        let now = SystemTime::now();
        let (created_at, expires_at) = (timestamp_at(now), timestamp_at(now + lifetime));
        self.write(move |tx| {
            challenges::present(tx, user_id, &host, &value, &created_at, &expires_at)
        })
        .await
    }

    /// Removes `value` (None: every value) at `_acme-challenge.<host>` of `user_id`'s host.
    pub async fn clean_up_challenge(
        &self,
        user_id: i64,
        host: DomainName,
        value: Option<String>,
    ) -> Result<ChallengeOutcome, StoreError> {
        self.write(move |tx| {
            challenges::clean_up(tx, user_id, &host, value.as_deref(), &timestamp())
        })
        .await
    }

    /// Removes the values past their expiry; the names they were served at (a read first:
    /// nothing is written when nothing expired).
    pub async fn expire_challenges(&self) -> Result<Vec<String>, StoreError> {
        let now = timestamp();
        if !self
            .store
            .read(|conn| challenges::any_expired(conn, &now))?
        {
            return Ok(Vec::new());
        }
        self.write(move |tx| challenges::expire(tx, &now)).await
    }
}
