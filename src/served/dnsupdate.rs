//! The verbs of the RFC 2136 listener: the TSIG key a message names, and the update's write in
//! the group commit, answered after its commit (when lookups already serve it).

use super::Served;
use crate::model::tsig::TsigKey;
use crate::store::dnsupdate::{self, DnsUpdateOutcome, DnsUpdatePlan};
use crate::store::tsig::find_active_tsig_key;
use crate::store::{StoreError, timestamp};

impl Served {
    /// The active TSIG key named `name` (lower case, no final dot).
    pub fn tsig_key(&self, name: &str) -> Result<Option<TsigKey>, StoreError> {
        self.read(|conn| find_active_tsig_key(conn, name))
    }

    /// Applies `plan` whole or not at all (see [`dnsupdate::apply`]).
    pub async fn apply_dns_update(
        &self,
        plan: DnsUpdatePlan,
    ) -> Result<DnsUpdateOutcome, StoreError> {
        self.write(move |tx| dnsupdate::apply(tx, &plan, &timestamp()))
            .await
    }
}
