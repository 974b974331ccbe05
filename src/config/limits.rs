//! `[limits]`: abuse, password guessing, password checks, key retention. Live.

use std::time::Duration;

use super::{ConfigError, Section};
use serde::{Deserialize, Serialize};

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Limits {
    /// Flag hosts whose update requests stay above the allowed rate (`abuse`, 429).
    pub abuse_detection: bool,
    /// Update requests for one host of one user that may come at once.
    pub abuse_burst: u32,
    /// One more request is allowed every this long (1 s: the spec's once a second).
    #[serde(rename = "abuse-refill-ms", with = "super::units::millis")]
    pub abuse_refill: Duration,
    /// How long requests must stay above that rate before the host is flagged.
    #[serde(rename = "abuse-flag-after-secs", with = "super::units::secs")]
    pub abuse_flag_after: Duration,
    /// How long a flagged host must stay under the rate before the flag lifts.
    #[serde(rename = "abuse-cooldown-secs", with = "super::units::secs")]
    pub abuse_cooldown: Duration,
    /// Authentication failures within the window that make a client or login throttled; 0: off.
    pub auth_failure_limit: u32,
    /// The window authentication failures are counted in.
    #[serde(rename = "auth-failure-window-secs", with = "super::units::secs")]
    pub auth_failure_window: Duration,
    /// How long a throttled client or login is refused without checking passwords.
    #[serde(rename = "auth-failure-cooldown-secs", with = "super::units::secs")]
    pub auth_failure_cooldown: Duration,
    /// How long a client address that authenticated as a login stays exempt from that login's
    /// failure throttle; 0: no exemption.
    #[serde(rename = "auth-known-client-days", with = "super::units::days")]
    pub auth_known_client: Duration,
    /// Password checks (argon2id, about 19 MiB each) run at once; 0: one per CPU core.
    pub password_check_concurrency: usize,
    /// Password checks that may wait for one of those places; beyond them, `911` (503).
    pub password_check_queue: usize,
    /// How many recent successful password checks to remember (0 turns the cache off).
    pub password_cache_size: usize,
    /// How long a remembered password check stays valid.
    #[serde(rename = "password-cache-ttl-secs", with = "super::units::secs")]
    pub password_cache_ttl: Duration,
    /// How long a revoked API key stays listed before it is deleted.
    #[serde(rename = "revoked-key-retention-days", with = "super::units::days")]
    pub revoked_key_retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            abuse_detection: true,
            abuse_burst: 5,
            abuse_refill: Duration::from_secs(1),
            abuse_flag_after: Duration::from_secs(5),
            abuse_cooldown: Duration::from_secs(60),
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            auth_failure_cooldown: Duration::from_secs(300),
            auth_known_client: Duration::from_secs(30 * 24 * 3600),
            password_check_concurrency: 0,
            password_check_queue: 64,
            password_cache_size: 10_000,
            password_cache_ttl: Duration::from_secs(300),
            revoked_key_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl Section for Limits {
    fn restart_needed(&self, _next: &Self) -> Vec<&'static str> {
        // Every key is live: named here, so that a new one is sorted on purpose.
        let Self {
            abuse_detection: _,
            abuse_burst: _,
            abuse_refill: _,
            abuse_flag_after: _,
            abuse_cooldown: _,
            auth_failure_limit: _,
            auth_failure_window: _,
            auth_failure_cooldown: _,
            auth_known_client: _,
            password_check_concurrency: _,
            password_check_queue: _,
            password_cache_size: _,
            password_cache_ttl: _,
            revoked_key_retention: _,
        } = self;
        Vec::new()
    }

    fn reloaded(&self, next: &Self) -> Self {
        next.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.abuse_burst == 0 || self.abuse_refill.is_zero() || self.abuse_flag_after.is_zero() {
            return Err(ConfigError::Invalid(
                "abuse-burst, abuse-refill-ms and abuse-flag-after-secs must be at least 1 \
                 (abuse-detection = false turns flagging off)"
                    .into(),
            ));
        }
        Ok(())
    }
}
