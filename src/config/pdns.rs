//! `[pdns]`: the pdns front-ends whose caches are purged. Live.

use std::time::Duration;

use super::{ConfigError, Section};
use serde::{Deserialize, Serialize};

/// A pdns front-end to purge, as configured under `[[pdns.api]]`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PdnsApi {
    /// Base URL of its webserver/API, e.g. `http://127.0.0.1:8082`.
    pub api_url: String,
    /// Its `api-key`.
    pub api_key: String,
    /// Its server id in API paths (pdns's is always `localhost`).
    #[serde(default = "default_server_id")]
    pub server_id: String,
}

impl std::fmt::Debug for PdnsApi {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdnsApi")
            .field("api_url", &self.api_url)
            .field("api_key", &"<redacted>")
            .field("server_id", &self.server_id)
            .finish()
    }
}

/// pdns's server id.
fn default_server_id() -> String {
    "localhost".into()
}

/// `[pdns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Pdns {
    /// How long an update's answer waits for the purge of pdns's caches.
    #[serde(rename = "purge-wait-ms", with = "super::units::millis")]
    pub purge_wait: Duration,
    /// pdns front-ends whose caches are purged after each change (`[[pdns.api]]` tables).
    pub api: Vec<PdnsApi>,
}

impl Default for Pdns {
    fn default() -> Self {
        Self {
            purge_wait: Duration::from_secs(1),
            api: Vec::new(),
        }
    }
}

impl Section for Pdns {
    fn restart_needed(&self, _next: &Self) -> Vec<&'static str> {
        // Every key is live: named here, so that a new one is sorted on purpose.
        let Self {
            purge_wait: _,
            api: _,
        } = self;
        Vec::new()
    }

    fn reloaded(&self, next: &Self) -> Self {
        next.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for pdns in &self.api {
            if !pdns.api_url.starts_with("http://") {
                return Err(ConfigError::Invalid(format!(
                    "[[pdns.api]] api-url {:?}: only http:// is supported (pdns's API on \
                     loopback or a private network; for another network, tunnel it)",
                    pdns.api_url
                )));
            }
        }
        Ok(())
    }
}
