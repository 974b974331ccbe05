//! `[dashboard]`: the account holder's pages. Live, but for `enabled`.

use std::time::Duration;

use super::{ConfigError, Section, changed};
use serde::{Deserialize, Serialize};

/// The longest `session-lifetime-secs`: 30 days.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[dashboard]`: the account holder's pages (`/dashboard`), served on the update listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Dashboard {
    /// Serve the pages; `false` answers 404 under `/dashboard` (the update endpoints alone).
    pub enabled: bool,
    /// How long a sign-in lasts; sign-out, disabling the user or a new password end it sooner.
    #[serde(rename = "session-lifetime-secs", with = "super::units::secs")]
    pub session_lifetime: Duration,
    /// Rows per page of a domain's update history.
    pub history_page_size: u32,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            enabled: true,
            session_lifetime: Duration::from_secs(12 * 3600),
            history_page_size: 25,
        }
    }
}

impl Section for Dashboard {
    fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        let Self {
            enabled,
            session_lifetime: _,
            history_page_size: _,
        } = self;
        changed(&[("dashboard.enabled", *enabled != next.enabled)])
    }

    fn reloaded(&self, next: &Self) -> Self {
        Self {
            enabled: self.enabled,
            ..next.clone()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.session_lifetime.is_zero()
            || self.session_lifetime > MAX_SESSION_LIFETIME
            || !(1..=500).contains(&self.history_page_size)
        {
            return Err(ConfigError::Invalid(format!(
                "[dashboard] session-lifetime-secs must be 1 to {} (30 days), \
                 history-page-size 1 to 500",
                MAX_SESSION_LIFETIME.as_secs()
            )));
        }
        Ok(())
    }
}
