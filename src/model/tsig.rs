//! TSIG keys (RFC 8945), as the admin creates them and the RFC 2136 listener will check them:
//! a name, an HMAC algorithm, a shared secret, and what the key may change. The secret is
//! needed whole to compute the HMAC, so it is stored as it is (the database is private to
//! the service's user, mode 0600) and shown once, at creation.

use std::fmt;
use std::str::FromStr;

use super::InvalidValue;
use super::rdata::StaticType;

/// The HMAC algorithms taken (RFC 8945 §6: SHA-256 mandatory, SHA-512 recommended, SHA-1 for
/// old clients only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`, the default.
    HmacSha256,
    /// `hmac-sha512`.
    HmacSha512,
    /// `hmac-sha1`, for clients that know nothing newer.
    HmacSha1,
}

impl TsigAlgorithm {
    /// Every algorithm, the default first.
    pub const ALL: [Self; 3] = [Self::HmacSha256, Self::HmacSha512, Self::HmacSha1];

    /// The name BIND, nsupdate and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha512 => "hmac-sha512",
            Self::HmacSha1 => "hmac-sha1",
        }
    }

    /// The length of a new key's secret, in bytes: the hash's output length (RFC 8945 §6:
    /// shorter keys are weaker, longer ones are hashed down anyway).
    pub fn secret_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacSha512 => 64,
            Self::HmacSha1 => 20,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = InvalidValue;

    /// Any case, with or without the final dot of the algorithm's DNS name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.strip_suffix('.').unwrap_or(text);
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                InvalidValue::new(
                    "the TSIG algorithm must be hmac-sha256, hmac-sha512 or hmac-sha1",
                    text,
                )
            })
    }
}

/// What a key may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsigScope {
    /// An account's key: the A, AAAA and `_acme-challenge` TXT of the names the account owns,
    /// as `/nic/update` and `/acme/*` may change them.
    Account {
        /// The account.
        user_id: i64,
    },
    /// An admin's key for a zone, or only the names at and below `subtree` in it (external-dns,
    /// Kea, cert-manager), limited to `types`, kept as static records of the zone.
    Zone {
        /// The zone.
        zone_id: i64,
        /// The top of the names it may change; None: the whole zone.
        subtree: Option<String>,
        /// The record types it may change.
        types: Vec<StaticType>,
    },
}

/// A key as the store holds it. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Row id.
    pub id: i64,
    /// The key's name, as clients send it (a DNS name, lower case, no final dot).
    pub name: String,
    /// Its algorithm.
    pub algorithm: TsigAlgorithm,
    /// The shared secret, base64.
    pub secret: String,
    /// What it may change.
    pub scope: TsigScope,
    /// False once revoked.
    pub is_active: bool,
    /// Creation time.
    pub created_at: String,
    /// Last successful use.
    pub last_used_at: Option<String>,
}

impl fmt::Debug for TsigKey {
    /// Everything but the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// A key as `tsig list` shows it: no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TsigKeyListing {
    /// The key's name.
    pub name: String,
    /// Its algorithm.
    pub algorithm: String,
    /// The account it belongs to, for an account's key.
    pub user: Option<String>,
    /// The zone, for an admin's key.
    pub zone: Option<String>,
    /// The subtree, for an admin's key limited to one.
    pub subtree: Option<String>,
    /// The types an admin's key may change.
    pub types: Option<String>,
    /// False once revoked.
    pub active: bool,
    /// Creation time.
    pub created_at: String,
    /// Last successful use.
    pub last_used_at: Option<String>,
}

/// The record types a zone key may change by default: addresses and TXT (external-dns's
/// records and its TXT registry, cert-manager's challenges).
pub const DEFAULT_ZONE_KEY_TYPES: [StaticType; 3] =
    [StaticType::A, StaticType::Aaaa, StaticType::Txt];

/// A comma-separated list of record types (`A,AAAA,TXT`), each once.
pub fn parse_types(text: &str) -> Result<Vec<StaticType>, InvalidValue> {
    let mut types = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let parsed: StaticType = part.parse()?;
        if !types.contains(&parsed) {
            types.push(parsed);
        }
    }
    if types.is_empty() {
        return Err(InvalidValue::new("name at least one record type", text));
    }
    Ok(types)
}

/// The key block BIND reads and `nsupdate -k FILE` takes: how a new key is handed over.
pub fn key_file(name: &str, algorithm: TsigAlgorithm, secret: &str) -> String {
    format!("key \"{name}\" {{\n\talgorithm {algorithm};\n\tsecret \"{secret}\";\n}};\n")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn algorithms_parse_as_clients_write_them_and_secrets_fit_them() {
        assert_eq!(
            "HMAC-SHA512.".parse::<TsigAlgorithm>().unwrap(),
            TsigAlgorithm::HmacSha512
        );
        assert!(
            "hmac-md5".parse::<TsigAlgorithm>().is_err(),
            "MD5 is not taken"
        );
        assert_eq!(
            parse_types("a, AAAA,txt,A").unwrap(),
            [StaticType::A, StaticType::Aaaa, StaticType::Txt]
        );
        assert!(parse_types("A,PTRX").is_err());
        assert!(parse_types(" , ").is_err());
        let key = TsigKey {
            id: 1,
            name: "k".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: "c2VjcmV0c2VjcmV0".into(),
            scope: TsigScope::Account { user_id: 1 },
            is_active: true,
            created_at: "t".into(),
            last_used_at: None,
        };
        assert!(
            !format!("{key:?}").contains("c2VjcmV0c2VjcmV0"),
            "no secret in Debug"
        );
    }
}
