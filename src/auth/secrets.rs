//! Credentials: password hashing, API keys and the cache of recent password checks.
//!
//! Pure and synchronous: no SQL, no HTTP. argon2 is slow on purpose (tens of milliseconds), so
//! async callers run [`verify_password`] on a blocking thread.
//!
//! * Passwords are hashed with argon2id, default parameters (RFC 9106 second recommendation),
//!   a random 16-byte salt per hash, stored as PHC strings.
//! * API keys are `ak_` + 32 random bytes (base64url, 43 characters). Only their SHA-256 is
//!   stored; the key is found by that hash, so there is nothing secret to compare in memory.
//! * [`PasswordCache`] remembers successful password checks for a short time, keyed by an
//!   HMAC of user id and password under a per-process random key.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The marker every API key starts with.
pub const API_KEY_MARKER: &str = "ak_";

/// How many characters of a key (marker included) are kept as its non-secret prefix.
const API_KEY_PREFIX_LEN: usize = API_KEY_MARKER.len() + 8;

/// A failure to hash a password.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| HashError(error.to_string()))
}

/// Checks `password` against a stored PHC string. A malformed stored hash never matches.
///
/// The argon2 working memory (19 MiB at the default parameters) is kept per thread and
/// reused, instead of allocated and freed on every check: glibc kept each freed 19 MiB block
/// resident (measured: +19.5 MB of RSS per check, 200 MB after ten), so a burst of wrong
/// passwords grew the process without bound. Checks run on a few threads of their own
/// (`dyndns::update::PasswordChecks`), so this is a few times 19 MiB in all.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use std::cell::RefCell;
    thread_local! {
        /// This thread's argon2 working memory, grown to the largest parameters seen.
        static MEMORY: RefCell<Vec<argon2::Block>> = const { RefCell::new(Vec::new()) };
    }
    let Ok(hash) = argon2::PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let blocks = params.block_count();
    let mut output = vec![0_u8; expected.len()];
    let computed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::new());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut output,
            &mut memory[..blocks],
        )
    });
    computed.is_ok() && bool::from(output.as_slice().ct_eq(expected.as_bytes()))
}

/// Spends the time of one password check on nothing, so that an unknown user takes as long
/// to refuse as a wrong password (no user enumeration by timing).
pub fn verify_password_of_nobody(password: &str) {
    use std::sync::OnceLock;
    /// A hash of a random password, made once.
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        hash_password(&URL_SAFE_NO_PAD.encode(random)).expect("hashing a decoy cannot fail")
    });
    let _ = verify_password(password, decoy);
}

/// A freshly generated API key: the secret, shown once, and what the store keeps.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The whole key, `ak_...`. Printed once, never stored.
    pub secret: String,
    /// The non-secret prefix for listings.
    pub prefix: String,
    /// SHA-256 of the key, lower-case hex: the stored lookup value.
    pub hash: String,
}

/// Generates a new API key from 256 bits of OS randomness.
pub fn generate_api_key() -> NewApiKey {
    let random: [u8; 32] = rand::random();
    let secret = format!("{API_KEY_MARKER}{}", URL_SAFE_NO_PAD.encode(random));
    NewApiKey {
        prefix: api_key_prefix(&secret).to_string(),
        hash: hash_api_key(&secret),
        secret,
    }
}

/// The stored lookup value of a key: SHA-256, lower-case hex.
///
/// A plain hash is enough here (unlike passwords): keys carry 256 bits of entropy, so there is
/// nothing to brute-force.
pub fn hash_api_key(key: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(key.as_bytes());
    // On every keyed request: one allocation, not one per byte.
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    hex
}

/// The non-secret prefix of a key, as listed by `key list`.
pub fn api_key_prefix(key: &str) -> &str {
    let end = key
        .char_indices()
        .nth(API_KEY_PREFIX_LEN)
        .map_or(key.len(), |(index, _)| index);
    &key[..end]
}

/// Whether a password-like string has the shape of an API key (worth a key lookup).
pub fn looks_like_api_key(text: &str) -> bool {
    text.len() > API_KEY_PREFIX_LEN && text.starts_with(API_KEY_MARKER)
}

/// A remembered check: SHA-256 of the PHC string checked against, and when.
type CachedCheck = ([u8; 32], Instant);

/// HMAC-SHA-256, the keyed hash of the cache.
type HmacSha256 = hmac::Hmac<Sha256>;

/// A bounded, short-lived memory of successful password checks.
///
/// Routers poll every few minutes with the account password; running argon2 for each poll
/// would make the CPU the limit of the service. An entry is keyed by HMAC(user id, password)
/// under a key that lives only in this process, so the cache never holds a password or a
/// value that could be tested offline. The entry also keeps the stored hash it was checked
/// against: when the password changes the stored hash changes, and the entry no longer
/// matches. A disabled user is refused before the cache is asked.
#[derive(Debug)]
pub struct PasswordCache {
    /// The per-process HMAC key.
    key: [u8; 32],
    /// How long an entry stays valid, in milliseconds (a reload may change it).
    lifetime_ms: std::sync::atomic::AtomicU64,
    /// The entries; None when caching is off (a reload may turn it on or off, or resize it).
    entries: Mutex<Option<lru::LruCache<[u8; 32], CachedCheck>>>,
}

impl PasswordCache {
    /// A cache of at most `capacity` entries, each valid for `lifetime`. A capacity of 0
    /// turns caching off.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            key: rand::random(),
            lifetime_ms: millis(lifetime).into(),
            entries: Mutex::new(NonZeroUsize::new(capacity).map(lru::LruCache::new)),
        }
    }

    /// Keeps at most `capacity` entries (0: caching off, entries dropped), each valid for
    /// `lifetime`, from now on. Entries that fit stay.
    pub fn resize(&self, capacity: usize, lifetime: Duration) {
        self.lifetime_ms
            .store(millis(lifetime), std::sync::atomic::Ordering::Relaxed);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (NonZeroUsize::new(capacity), entries.as_mut()) {
            (None, _) => *entries = None,
            (Some(capacity), Some(cache)) => cache.resize(capacity),
            (Some(capacity), None) => *entries = Some(lru::LruCache::new(capacity)),
        }
    }

    /// Whether `password` was recently checked and found right for `user_id` whose stored
    /// hash is still `phc`.
    pub fn contains(&self, user_id: i64, password: &str, phc: &str) -> bool {
        let entry_key = self.entry_key(user_id, password);
        let lifetime =
            Duration::from_millis(self.lifetime_ms.load(std::sync::atomic::Ordering::Relaxed));
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(entries) = entries.as_mut() else {
            return false;
        };
        match entries.get(&entry_key) {
            Some((hash_of_phc, checked_at)) if checked_at.elapsed() < lifetime => {
                let current: [u8; 32] = Sha256::digest(phc.as_bytes()).into();
                bool::from(hash_of_phc.ct_eq(&current))
            }
            Some(_) => {
                entries.pop(&entry_key);
                false
            }
            None => false,
        }
    }

    /// Remembers that `password` is right for `user_id` with stored hash `phc`.
    pub fn insert(&self, user_id: i64, password: &str, phc: &str) {
        let entry_key = self.entry_key(user_id, password);
        let value = (Sha256::digest(phc.as_bytes()).into(), Instant::now());
        if let Some(entries) = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_mut()
        {
            entries.put(entry_key, value);
        }
    }

    /// The HMAC of user id and password under this process's key: what identifies a check
    /// (also for coalescing identical checks under way), never the password itself.
    pub fn entry_key(&self, user_id: i64, password: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(&user_id.to_be_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// `duration` in whole milliseconds, saturating: how the guards keep a reloadable lifetime in
/// an atomic.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A new key's secret: random bytes of the algorithm's length, base64 as BIND writes it.
pub fn generate_tsig_secret(algorithm: crate::model::tsig::TsigAlgorithm) -> String {
    let mut secret = vec![0_u8; algorithm.secret_len()];
    rand::fill(secret.as_mut_slice());
    base64::engine::general_purpose::STANDARD.encode(secret)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tsig_secrets_are_random_and_as_long_as_their_hash() {
        use crate::model::tsig::TsigAlgorithm;
        for algorithm in TsigAlgorithm::ALL {
            let secret = generate_tsig_secret(algorithm);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&secret)
                .unwrap();
            assert_eq!(bytes.len(), algorithm.secret_len());
            assert_ne!(secret, generate_tsig_secret(algorithm));
        }
    }

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        let phc = hash_password("pa:ss&word").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("pa:ss&word", &phc));
        assert!(!verify_password("pa:ss&word ", &phc));
        assert!(!verify_password("pa:ss&word", "not a phc string"));
        assert_ne!(
            phc,
            hash_password("pa:ss&word").unwrap(),
            "salts must differ"
        );
    }

    #[test]
    fn api_keys_are_random_prefixed_and_hashed() {
        let key = generate_api_key();
        assert!(key.secret.starts_with("ak_"));
        assert_eq!(key.secret.len(), 3 + 43);
        assert_eq!(key.prefix, &key.secret[..11]);
        assert_eq!(key.hash, hash_api_key(&key.secret));
        assert_eq!(key.hash.len(), 64);
        assert_ne!(key.secret, generate_api_key().secret);
        assert!(looks_like_api_key(&key.secret));
        assert!(!looks_like_api_key("ak_short"));
        assert!(!looks_like_api_key("password"));
    }

    #[test]
    fn sha256_of_a_known_key() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cache_hits_only_for_same_user_password_and_stored_hash() {
        let cache = PasswordCache::new(16, Duration::from_secs(60));
        cache.insert(1, "secret", "$phc-1");
        assert!(cache.contains(1, "secret", "$phc-1"));
        assert!(!cache.contains(1, "Secret", "$phc-1"));
        assert!(!cache.contains(2, "secret", "$phc-1"));
        assert!(
            !cache.contains(1, "secret", "$phc-2"),
            "a password change invalidates"
        );
    }

    #[test]
    fn cache_entries_expire_and_capacity_is_bounded() {
        let cache = PasswordCache::new(2, Duration::ZERO);
        cache.insert(1, "secret", "$phc");
        assert!(!cache.contains(1, "secret", "$phc"));

        let cache = PasswordCache::new(2, Duration::from_secs(60));
        cache.insert(1, "a", "$phc");
        cache.insert(2, "b", "$phc");
        cache.insert(3, "c", "$phc");
        assert!(
            !cache.contains(1, "a", "$phc"),
            "the oldest entry is evicted"
        );
        assert!(cache.contains(3, "c", "$phc"));

        let off = PasswordCache::new(0, Duration::from_secs(60));
        off.insert(1, "a", "$phc");
        assert!(!off.contains(1, "a", "$phc"));
    }

    #[test]
    fn a_resized_cache_keeps_what_fits_and_can_be_turned_off_and_on() {
        let cache = PasswordCache::new(3, Duration::from_secs(60));
        for user in 1..=3 {
            cache.insert(user, "pw", "phc");
        }
        cache.resize(2, Duration::from_secs(60));
        // The least recently used went; the others stay.
        assert!(!cache.contains(1, "pw", "phc"));
        assert!(cache.contains(2, "pw", "phc") && cache.contains(3, "pw", "phc"));
        cache.resize(2, Duration::ZERO);
        assert!(
            !cache.contains(3, "pw", "phc"),
            "expired under the new lifetime"
        );
        cache.resize(0, Duration::from_secs(60));
        cache.insert(4, "pw", "phc");
        assert!(!cache.contains(4, "pw", "phc"), "off");
        cache.resize(5, Duration::from_secs(60));
        cache.insert(4, "pw", "phc");
        assert!(cache.contains(4, "pw", "phc"), "on again");
    }
}
