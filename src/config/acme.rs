//! `[acme]`: ACME DNS-01 challenge values for the DDNS hosts. Live.

use std::time::Duration;

use super::{ConfigError, Section};
use serde::{Deserialize, Serialize};

/// `[acme]`: TXT values at `_acme-challenge.<host>` set by the host's owner (lego's `httpreq`,
/// acme-dns's `/update`, `txt=` on `/nic/update`), so that home servers get certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Acme {
    /// Serve the endpoints; `false` answers 404 on them, and 400 to `txt=` on the update
    /// endpoints.
    pub enabled: bool,
    /// How long a value is served unless cleaned up before.
    #[serde(rename = "value-lifetime-secs", with = "super::units::secs")]
    pub value_lifetime: Duration,
}

impl Default for Acme {
    fn default() -> Self {
        Self {
            enabled: true,
            value_lifetime: Duration::from_secs(3600),
        }
    }
}

impl Section for Acme {
    fn restart_needed(&self, _next: &Self) -> Vec<&'static str> {
        // Every key is live: named here, so that a new one is sorted on purpose.
        let Self {
            enabled: _,
            value_lifetime: _,
        } = self;
        Vec::new()
    }

    fn reloaded(&self, next: &Self) -> Self {
        next.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=7 * 24 * 3600).contains(&self.value_lifetime.as_secs()) {
            return Err(ConfigError::Invalid(
                "[acme] value-lifetime-secs must be 60 to 604800 (a week)".into(),
            ));
        }
        Ok(())
    }
}

impl Acme {
    /// How long a value is served; None when the ACME endpoints (and `txt=`) are off.
    pub fn lifetime(&self) -> Option<Duration> {
        self.enabled.then_some(self.value_lifetime)
    }
}
