//! One name, one owner: which DDNS names an account may hold, given what others hold.
//!
//! An ACME DNS-01 validation for a name proves control of that name and, as a wildcard, of
//! every name beneath it. So a DDNS name (which may serve ACME values) must not be a zone
//! apex, must not lie beneath a name another account holds (that account could get a
//! wildcard certificate covering it), and must not lie above one (this account could). The
//! rule is here once, over [`Holders`]: the store answers it with SQL for single names
//! (`domain add`, ACME values), and [`HolderMap`] in memory for many (imports, the check
//! of a whole store at start).

use std::collections::HashMap;
use std::fmt;

/// Why `name` cannot be (or, in an older store, should not be) held by its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipConflict {
    /// The name refused.
    pub name: String,
    /// What it collides with.
    pub kind: ConflictKind,
}

/// The ways a name collides with the zone or with another account's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// The name is the apex of its zone.
    Apex,
    /// Another account holds the name itself (an older store: one type each).
    Taken {
        /// That account's username.
        owner: String,
    },
    /// The name lies beneath `other`, which another account holds.
    Beneath {
        /// The other account's name.
        other: String,
        /// That account's username.
        owner: String,
    },
    /// The name lies above `other`, which another account holds.
    Above {
        /// The other account's name.
        other: String,
        /// That account's username.
        owner: String,
    },
}

impl fmt::Display for OwnershipConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.kind {
            ConflictKind::Apex => write!(
                f,
                "{name} is the apex of its zone: its holder could get a certificate for every \
                 name in the zone (*.{name}); use a name beneath it"
            ),
            ConflictKind::Taken { owner } => write!(f, "{name} belongs to {owner:?} already"),
            ConflictKind::Beneath { other, owner } => write!(
                f,
                "{name} is beneath {other}, which belongs to {owner:?}: one name, one owner \
                 (a certificate for *.{other} would cover it)"
            ),
            ConflictKind::Above { other, owner } => write!(
                f,
                "{name} is above {other}, which belongs to {owner:?}: one name, one owner \
                 (a certificate for *.{name} would cover it)"
            ),
        }
    }
}

/// Who holds which names: what [`check`] asks. Names are normalised (lower case, no final
/// dot); accounts are user ids.
pub trait Holders {
    /// A failure to look up.
    type Error;

    /// The username of an account other than `owner` holding `name`, if any.
    fn other_at(&self, name: &str, owner: i64) -> Result<Option<String>, Self::Error>;

    /// A name strictly beneath `name` held by an account other than `owner`, with that
    /// account's username, if any.
    fn other_beneath(
        &self,
        name: &str,
        owner: i64,
    ) -> Result<Option<(String, String)>, Self::Error>;
}

/// Whether account `owner` may hold `name` in the zone whose apex is `apex` (`name` at or
/// below it): the first conflict found, or `Ok(None)`.
pub fn check<H: Holders>(
    name: &str,
    owner: i64,
    apex: &str,
    holders: &H,
) -> Result<Option<OwnershipConflict>, H::Error> {
    let conflict = |kind| {
        Ok(Some(OwnershipConflict {
            name: name.to_string(),
            kind,
        }))
    };
    if name == apex {
        return conflict(ConflictKind::Apex);
    }
    if let Some(owner) = holders.other_at(name, owner)? {
        return conflict(ConflictKind::Taken { owner });
    }
    for ancestor in ancestors(name, apex) {
        if let Some(holder) = holders.other_at(ancestor, owner)? {
            return conflict(ConflictKind::Beneath {
                other: ancestor.to_string(),
                owner: holder,
            });
        }
    }
    if let Some((other, holder)) = holders.other_beneath(name, owner)? {
        return conflict(ConflictKind::Above {
            other,
            owner: holder,
        });
    }
    Ok(None)
}

/// The names strictly above `name`, nearest first, down to `apex` included (none when `name`
/// is not below `apex`).
fn ancestors<'a>(name: &'a str, apex: &'a str) -> impl Iterator<Item = &'a str> {
    let below = super::is_within(name, apex) && name != apex;
    name.match_indices('.')
        .map(move |(dot, _)| &name[dot + 1..])
        .take_while(move |suffix| below && suffix.len() >= apex.len())
}

/// Who holds which names, in memory: built from a store's rows (and a file's), answered in
/// time proportional to a name's depth.
#[derive(Debug, Default)]
pub struct HolderMap {
    /// Each held name's accounts (one, but for an older store): id and username.
    held: HashMap<String, Vec<(i64, String)>>,
    /// For each name above a held one (down to its zone's apex): the first two accounts
    /// holding names beneath it, with one such name each. Two suffice to find "another".
    beneath: HashMap<String, Vec<(i64, String, String)>>,
}

impl HolderMap {
    /// Records that account `owner` (`username`) holds `name`, in the zone at `apex`.
    pub fn add(&mut self, name: &str, owner: i64, username: &str, apex: &str) {
        let accounts = self.held.entry(name.to_string()).or_default();
        if accounts.iter().any(|(id, _)| *id == owner) {
            return;
        }
        accounts.push((owner, username.to_string()));
        for ancestor in ancestors(name, apex) {
            let below = self.beneath.entry(ancestor.to_string()).or_default();
            if below.len() < 2 && below.iter().all(|(id, _, _)| *id != owner) {
                below.push((owner, username.to_string(), name.to_string()));
            }
        }
    }
}

impl Holders for HolderMap {
    type Error = std::convert::Infallible;

    fn other_at(&self, name: &str, owner: i64) -> Result<Option<String>, Self::Error> {
        Ok(self.held.get(name).and_then(|accounts| {
            accounts
                .iter()
                .find(|(id, _)| *id != owner)
                .map(|(_, username)| username.clone())
        }))
    }

    fn other_beneath(
        &self,
        name: &str,
        owner: i64,
    ) -> Result<Option<(String, String)>, Self::Error> {
        Ok(self.beneath.get(name).and_then(|below| {
            below
                .iter()
                .find(|(id, _, _)| *id != owner)
                .map(|(_, username, held)| (held.clone(), username.clone()))
        }))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const APEX: &str = "dyn.example.net";

    fn map(names: &[(&str, i64)]) -> HolderMap {
        let mut map = HolderMap::default();
        for (name, owner) in names {
            map.add(name, *owner, &format!("user{owner}"), APEX);
        }
        map
    }

    fn kind(map: &HolderMap, name: &str, owner: i64) -> Option<ConflictKind> {
        check(name, owner, APEX, map)
            .unwrap()
            .map(|conflict| conflict.kind)
    }

    #[test]
    fn the_apex_is_nobodys() {
        assert_eq!(kind(&map(&[]), APEX, 1), Some(ConflictKind::Apex));
    }

    #[test]
    fn names_beneath_or_above_another_accounts_are_refused() {
        let holders = map(&[("home.dyn.example.net", 1)]);
        assert_eq!(
            kind(&holders, "x.y.home.dyn.example.net", 2),
            Some(ConflictKind::Beneath {
                other: "home.dyn.example.net".into(),
                owner: "user1".into()
            })
        );
        let holders = map(&[("x.y.home.dyn.example.net", 1)]);
        assert_eq!(
            kind(&holders, "home.dyn.example.net", 2),
            Some(ConflictKind::Above {
                other: "x.y.home.dyn.example.net".into(),
                owner: "user1".into()
            })
        );
        assert_eq!(
            kind(&holders, "x.y.home.dyn.example.net", 2),
            Some(ConflictKind::Taken {
                owner: "user1".into()
            })
        );
    }

    #[test]
    fn an_account_may_nest_its_own_names_and_neighbours_do_not_collide() {
        let holders = map(&[("home.dyn.example.net", 1), ("a.home.dyn.example.net", 1)]);
        assert_eq!(kind(&holders, "b.a.home.dyn.example.net", 1), None);
        assert_eq!(kind(&holders, "dyn.example.net.home", 2), None);
        // A label that only ends like another name is not beneath it.
        assert_eq!(kind(&holders, "myhome.dyn.example.net", 2), None);
        assert_eq!(kind(&holders, "office.dyn.example.net", 2), None);
    }

    #[test]
    fn another_beneath_is_found_past_the_accounts_own() {
        // Account 1 holds two names beneath, then account 2 one: still found.
        let holders = map(&[
            ("a.home.dyn.example.net", 1),
            ("b.home.dyn.example.net", 1),
            ("c.home.dyn.example.net", 2),
        ]);
        assert!(matches!(
            kind(&holders, "home.dyn.example.net", 1),
            Some(ConflictKind::Above { owner, .. }) if owner == "user2"
        ));
        assert!(matches!(
            kind(&holders, "home.dyn.example.net", 2),
            Some(ConflictKind::Above { owner, .. }) if owner == "user1"
        ));
    }
}
