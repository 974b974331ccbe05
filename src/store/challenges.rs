//! ACME DNS-01 challenge values (`acme_challenges`): TXT values at `_acme-challenge.<host>`,
//! set by the owner of a DDNS host, each until its cleanup or expiry.
//!
//! Protocol-free: the endpoints (lego's `httpreq`, acme-dns's `/update`, `txt=` on
//! `/nic/update`) turn an [`ChallengeOutcome`] into their answers.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::StoreError;
use super::domains::StoredHolders;
use super::zones::bump_serial;
use crate::model::DomainName;
pub use crate::model::challenge::{CHALLENGE_LABEL, ChallengeOutcome, challenge_name};
use crate::model::ownership;

/// The most values one name holds at once: an apex and a wildcard validation of the same host
/// need two; a client that never cleans up must not grow the answer without bound. A value
/// beyond them replaces the oldest.
pub const MAX_VALUES_PER_NAME: usize = 4;

/// The zone of `user_id`'s domain `host`, if the user has one by that name.
fn owned_host_zone(
    conn: &Connection,
    user_id: i64,
    host: &DomainName,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT zone_id FROM domains WHERE fqdn = ?1 AND +user_id = ?2 LIMIT 1")?
        .query_row(params![host.as_str(), user_id], |row| row.get(0))
        .optional()?)
}

/// Adds `value` at `_acme-challenge.<host>` for `user_id`, who must own `host`, until
/// `expires_at`; a value already there only gets the new expiry. Beyond
/// [`MAX_VALUES_PER_NAME`], the oldest values go.
pub fn present(
    conn: &Connection,
    user_id: i64,
    host: &DomainName,
    value: &str,
    now: &str,
    expires_at: &str,
) -> Result<ChallengeOutcome, StoreError> {
    let Some(zone_id) = owned_host_zone(conn, user_id, host)? else {
        return Ok(ChallengeOutcome::NoHost);
    };
    let apex = super::zones::apex_of(conn, zone_id)?;
    if let Some(conflict) = ownership::check(host.as_str(), user_id, &apex, &StoredHolders(conn))? {
        return Ok(ChallengeOutcome::Disputed(conflict));
    }
    let name = challenge_name(host);
    let refreshed = conn
        .prepare_cached(
            "UPDATE acme_challenges SET expires_at = ?3 WHERE name = ?1 AND value = ?2",
        )?
        .execute(params![name, value, expires_at])?;
    if refreshed > 0 {
        return Ok(ChallengeOutcome::Unchanged);
    }
    conn.prepare_cached(
        "INSERT INTO acme_challenges (zone_id, name, user_id, value, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![zone_id, name, user_id, value, now, expires_at])?;
    conn.prepare_cached(
        "DELETE FROM acme_challenges WHERE name = ?1 AND id NOT IN
             (SELECT id FROM acme_challenges WHERE name = ?1 ORDER BY id DESC LIMIT ?2)",
    )?
    .execute(params![
        name,
        i64::try_from(MAX_VALUES_PER_NAME).expect("small")
    ])?;
    bump_serial(conn, zone_id, now)?;
    Ok(ChallengeOutcome::Changed { name })
}

/// Removes `value` (or, for None, every value) at `_acme-challenge.<host>`, which `user_id`
/// must own.
pub fn clean_up(
    conn: &Connection,
    user_id: i64,
    host: &DomainName,
    value: Option<&str>,
    now: &str,
) -> Result<ChallengeOutcome, StoreError> {
    let Some(zone_id) = owned_host_zone(conn, user_id, host)? else {
        return Ok(ChallengeOutcome::NoHost);
    };
    let name = challenge_name(host);
    let removed = conn
        .prepare_cached(
            "DELETE FROM acme_challenges WHERE name = ?1 AND (?2 IS NULL OR value = ?2)",
        )?
        .execute(params![name, value])?;
    if removed == 0 {
        return Ok(ChallengeOutcome::Unchanged);
    }
    bump_serial(conn, zone_id, now)?;
    Ok(ChallengeOutcome::Changed { name })
}

/// Whether any value has expired by `now` (a read, so that the periodic sweep writes only
/// when there is something to remove).
pub fn any_expired(conn: &Connection, now: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM acme_challenges WHERE expires_at <= ?1)")?
        .query_row([now], |row| row.get(0))?)
}

/// Removes every value expired by `now`; the names they were served at.
pub fn expire(conn: &Connection, now: &str) -> Result<Vec<String>, StoreError> {
    let gone: Vec<(String, i64)> = conn
        .prepare_cached(
            "DELETE FROM acme_challenges WHERE expires_at <= ?1 RETURNING name, zone_id",
        )?
        .query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut zones: Vec<i64> = gone.iter().map(|(_, zone)| *zone).collect();
    zones.sort_unstable();
    zones.dedup();
    for zone in zones {
        bump_serial(conn, zone, now)?;
    }
    let mut names: Vec<String> = gone.into_iter().map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{Plan, RecordType};
    use crate::store::domains::{insert_domain, remove_domains};
    use crate::store::records::{Scope, each_stored};
    use crate::store::users::insert_user;
    use crate::store::{test_connection, test_zone};

    fn name(text: &str) -> DomainName {
        text.parse().unwrap()
    }

    fn served_txt(conn: &Connection, owner: &str) -> Vec<String> {
        let mut txt = Vec::new();
        each_stored(conn, Scope::All, |_, record| {
            if record.name == owner {
                txt.push(format!(
                    "{} {} {}",
                    record.record_type, record.ttl, record.content
                ));
            }
        })
        .unwrap();
        txt
    }

    #[test]
    fn values_are_served_by_their_owner_only_and_bounded() {
        let conn = test_connection();
        let zone = test_zone(&conn);
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let bob = insert_user(&conn, "bob", "b@example.com", "$phc", Plan::Plus, "t").unwrap();
        let home = name("home.dyn.example");
        insert_domain(&conn, &home, alice, zone, RecordType::A, "t").unwrap();
        assert_eq!(
            present(&conn, bob, &home, "v1", "t", "t9").unwrap(),
            ChallengeOutcome::NoHost,
            "not bob's host"
        );
        assert_eq!(
            present(&conn, alice, &name("other.dyn.example"), "v1", "t", "t9").unwrap(),
            ChallengeOutcome::NoHost
        );
        let challenge = "_acme-challenge.home.dyn.example".to_string();
        assert_eq!(
            present(&conn, alice, &home, "apex", "t", "t9").unwrap(),
            ChallengeOutcome::Changed {
                name: challenge.clone()
            }
        );
        present(&conn, alice, &home, "wildcard", "t", "t9").unwrap();
        assert_eq!(
            present(&conn, alice, &home, "apex", "t", "t9").unwrap(),
            ChallengeOutcome::Unchanged
        );
        assert_eq!(
            served_txt(&conn, &challenge),
            ["TXT 60 \"apex\"", "TXT 60 \"wildcard\""]
        );
        for n in 0..5 {
            present(&conn, alice, &home, &format!("extra{n}"), "t", "t9").unwrap();
        }
        assert_eq!(
            served_txt(&conn, &challenge),
            [
                "TXT 60 \"extra1\"",
                "TXT 60 \"extra2\"",
                "TXT 60 \"extra3\"",
                "TXT 60 \"extra4\""
            ],
            "the newest four"
        );
        assert_eq!(
            clean_up(&conn, bob, &home, None, "t").unwrap(),
            ChallengeOutcome::NoHost
        );
        clean_up(&conn, alice, &home, Some("extra1"), "t").unwrap();
        assert_eq!(served_txt(&conn, &challenge).len(), 3);
        assert_eq!(
            clean_up(&conn, alice, &home, Some("extra1"), "t").unwrap(),
            ChallengeOutcome::Unchanged
        );
        // Expiry, then the host's removal, take the rest.
        present(&conn, alice, &home, "late", "t", "t5").unwrap();
        assert!(!any_expired(&conn, "t4").unwrap());
        assert!(any_expired(&conn, "t5").unwrap());
        assert_eq!(
            expire(&conn, "t5").unwrap(),
            std::slice::from_ref(&challenge)
        );
        assert_eq!(served_txt(&conn, &challenge).len(), 3);
        remove_domains(&conn, "home.dyn.example", None, "t").unwrap();
        assert!(served_txt(&conn, &challenge).is_empty());
    }
}
