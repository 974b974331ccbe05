//! Reading the configuration again on SIGHUP (`systemctl reload`), and the `[audit]` files
//! every `reload-check-secs`.
//!
//! A reload is all or nothing. The file is read and validated, and everything it needs is
//! prepared (the log filter parsed, the `[audit]` files read, a new pdns purger built) before
//! anything is applied: a broken file, or one naming a file that cannot be read, is refused as
//! a whole, the reason logged, and the running configuration stays. Applied live: `log-level`,
//! `[limits]` (what the guards learnt stays: flags, throttles, remembered passwords),
//! `[updates]` (trusted proxies, `always-200`, `public-url`, body limits), the dashboard's
//! session lifetime and page size, `backend-allow-from`, `[pdns]` and `[audit]`. What only a
//! restart can apply (the database, the sockets and their per-connection limits, `log-format`,
//! `dashboard.enabled`) is named in a warning and keeps its running value; a later reload
//! names it again until the service is restarted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use super::notify_systemd;
use crate::config::LiveSections;
use crate::config::{Config, ConfigSource};
use crate::dyndns::update::Updater;
use crate::inflight::InFlight;
use crate::intel::{IpIntel, Reloader};
use crate::log::LogFilter;
use crate::net::{AllowList, Networks};
use crate::purge::{Purger, Purging};

/// What a reload can change, and the configuration running.
pub(super) struct Live {
    /// Where the configuration is read from.
    pub source: ConfigSource,
    /// The configuration in effect (restart-only keys at their values of the start).
    pub running: Config,
    /// The log filter.
    pub log: LogFilter,
    /// `[updates]`, `[acme]` and `[dashboard]` as the update listener's handlers read them.
    pub sections: LiveSections,
    /// The update pace and authentication's limits.
    pub updater: Updater,
    /// The purger in use.
    pub purging: Purging,
    /// `trusted-proxies` as the update listener's per-client cap exempts them.
    pub trusted: Networks,
    /// `backend-allow-from` of the backend's network listeners.
    pub backend_allowed: Arc<AllowList>,
    /// The `[audit]` files and the data read from them.
    pub audit: Arc<Mutex<Reloader>>,
    /// The backend's answers on their way, which every purger waits for.
    pub inflight: Arc<InFlight>,
}

/// A configuration read, checked and prepared, not yet applied.
struct Prepared {
    /// The configuration as it will be in effect.
    config: Config,
    /// Keys changed in the file that only a restart applies.
    restart_needed: Vec<&'static str>,
    /// The new log filter, when `log-level` changed.
    log_filter: Option<EnvFilter>,
    /// The `[audit]` files read, when `[audit]` changed.
    audit: Option<Reloader>,
    /// The new purger (None: purges off), when the `[[pdns.api]]` list changed.
    purger: Option<Option<Purger>>,
}

impl Live {
    /// Checks the `[audit]` files every `reload-check-secs`, and reloads on each SIGHUP, until
    /// `stopped`.
    pub(super) async fn run(mut self, mut hangups: Signal, mut stopped: watch::Receiver<bool>) {
        let mut every = self.running.audit.reload_check;
        let mut ticks = interval(every).await;
        loop {
            let hangup = tokio::select! {
                _ = ticks.tick() => false,
                Some(()) = hangups.recv() => true,
                () = crate::net::stop_requested(&mut stopped) => return,
            };
            if hangup {
                self.reload().await;
            } else {
                self.check_audit(false).await;
            }
            if self.running.audit.reload_check != every {
                every = self.running.audit.reload_check;
                ticks = interval(every).await;
            }
        }
    }

    /// Reads the configuration again and applies it, or refuses it whole; then reads the
    /// `[audit]` files again (SIGHUP's meaning before configuration reloads existed).
    async fn reload(&mut self) {
        let file = self.source.file.as_ref().map_or_else(
            || "(no --config: the defaults)".to_string(),
            |path| path.display().to_string(),
        );
        tracing::info!(file, "SIGHUP received: reading the configuration again");
        notify_systemd(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        ]);
        let (source, running, from_env) = (
            self.source.clone(),
            self.running.clone(),
            self.log.from_env(),
        );
        let prepared =
            tokio::task::spawn_blocking(move || prepare(&source, &running, from_env)).await;
        let metrics = crate::metrics::metrics();
        match prepared {
            Ok(Ok(prepared)) => {
                let audit_read = prepared.audit.is_some();
                self.apply(prepared, &file);
                metrics
                    .config_reloads
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "applied" })
                    .inc();
                metrics.config_last_reload_successful.set(1);
                if !audit_read {
                    self.check_audit(true).await;
                }
            }
            Ok(Err(error)) => {
                tracing::error!(
                    file,
                    "configuration not reloaded, the running one stays: {error}"
                );
                metrics
                    .config_reloads
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "refused" })
                    .inc();
                metrics.config_last_reload_successful.set(0);
                self.check_audit(true).await;
            }
            Err(error) => tracing::error!(%error, "the configuration reload task failed"),
        }
        notify_systemd(&[sd_notify::NotifyState::Ready]);
    }

    /// Puts `prepared` in effect, logging what changed.
    fn apply(&mut self, prepared: Prepared, file: &str) {
        let Prepared {
            config,
            restart_needed,
            log_filter,
            audit,
            purger,
        } = prepared;
        let running = &self.running;
        let changed = running.changed_keys(&config);
        let mut applied: Vec<&str> = Vec::new();
        if config.log_level != running.log_level {
            match log_filter.map(|filter| self.log.set(filter)) {
                Some(Ok(())) => applied.push("log-level"),
                Some(Err(error)) => tracing::warn!("{error}"),
                None => tracing::warn!(
                    "log-level changed in the file, but RUST_LOG is set and chooses the log filter"
                ),
            }
        }
        if config.limits != running.limits {
            self.updater.reconfigure_limits(&config.limits);
            applied.push("limits");
        }
        if config.updates != running.updates
            || config.dashboard != running.dashboard
            || config.acme != running.acme
            || config.transfers != running.transfers
        {
            self.sections.apply(&config);
            self.trusted.replace(config.updates.trusted_proxies.clone());
            applied.push("updates, dashboard, acme and transfers");
        }
        if config.listeners.backend_allow_from != running.listeners.backend_allow_from {
            self.backend_allowed
                .replace(config.listeners.backend_allowed());
            applied.push("backend-allow-from");
        }
        if config.pdns != running.pdns {
            let current = self.purging.get();
            let purger = match purger {
                Some(next) => {
                    if let Some((old, _)) = &current {
                        old.retire();
                    }
                    next.map(|next| next.after_answers(Arc::clone(&self.inflight)))
                }
                None => current.map(|(purger, _)| purger),
            };
            tracing::info!(
                front_ends = config.pdns.api.len(),
                purge_wait_ms = config.pdns.purge_wait.as_millis(),
                "pdns front-ends to purge"
            );
            self.purging
                .set(purger.map(|purger| (purger, config.pdns.purge_wait)));
            applied.push("pdns");
        }
        if let Some(next) = audit {
            self.audit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .adopt(next);
            applied.push("audit");
        }
        if applied.is_empty() {
            tracing::info!(
                file,
                "configuration reloaded: nothing changed that applies live"
            );
        } else {
            tracing::info!(
                file,
                changed = %changed.join(", "),
                applied = %applied.join(", "),
                "configuration reloaded"
            );
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        if !restart_needed.is_empty() {
            tracing::warn!(
                keys = %restart_needed.join(", "),
                "these settings changed in the file but only a restart applies them; the running values stay"
            );
        }
        self.running = config;
    }

    /// Reads the `[audit]` files whose stamp changed (all of them if `force`), on a blocking
    /// thread.
    async fn check_audit(&self, force: bool) {
        let audit = Arc::clone(&self.audit);
        let checked = tokio::task::spawn_blocking(move || {
            audit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .check(force);
        })
        .await;
        if let Err(error) = checked {
            tracing::error!(%error, "the [audit] reload task failed");
        }
    }
}

/// Reads `source` and prepares what differs from `running` (blocking: file reads). `from_env`:
/// `RUST_LOG` chose the log filter.
fn prepare(source: &ConfigSource, running: &Config, from_env: bool) -> Result<Prepared, String> {
    let next = source.load().map_err(|error| error.to_string())?;
    let config = running.reloaded(&next);
    // The running sockets with the new allow list, say, must make sense together too.
    config.validate().map_err(|error| error.to_string())?;
    let log_filter = if config.log_level != running.log_level && !from_env {
        Some(LogFilter::parse(&config.log_level.0)?)
    } else {
        None
    };
    let audit = if config.audit != running.audit {
        Some(
            IpIntel::load(&config.audit)
                .map(|(_, reloader)| reloader)
                .map_err(|error| error.to_string())?,
        )
    } else {
        None
    };
    let purger = (config.pdns.api != running.pdns.api).then(|| Purger::new(&config.pdns.api));
    Ok(Prepared {
        restart_needed: running.restart_needed(&next),
        config,
        log_filter,
        audit,
        purger,
    })
}

/// An interval of `every` whose first tick (now) is taken.
async fn interval(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    ticks
}
