//! `[store]`: the SQLite file and how it is written. Restart-only, all of it.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Section, changed};
use serde::{Deserialize, Serialize};

/// SQLite's `synchronous` level: what a committed update survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Synchronous {
    /// A committed update survives a crash of the process, not a power loss or kernel crash:
    /// updates since the last checkpoint can be lost then (the file stays whole).
    Normal,
    /// A committed update survives a power loss too: each group commit waits for an fsync of
    /// the WAL, shared by every update in it (the default; no measurable cost in committed
    /// updates a second on the benchmark machine's disk, BENCHMARKS.md).
    Full,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; created from `schema.sql` when missing.
    pub database: PathBuf,
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// How long a write waits for the database lock before answering `dnserr`.
    #[serde(rename = "busy-timeout-ms", with = "super::units::millis")]
    pub busy_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database: PathBuf::from("certadns.db"),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(3),
        }
    }
}

impl Section for StoreConfig {
    fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        let Self {
            database,
            synchronous,
            busy_timeout,
        } = self;
        changed(&[
            ("store.database", *database != next.database),
            ("store.synchronous", *synchronous != next.synchronous),
            ("store.busy-timeout-ms", *busy_timeout != next.busy_timeout),
        ])
    }

    fn reloaded(&self, _next: &Self) -> Self {
        self.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
