//! The configuration: one TOML file with a section per part of the service (`[store]`,
//! `[listeners]`, `[updates]`, `[limits]`, `[audit]`, `[pdns]`, `[dashboard]`, `[acme]`, `[transfers]`), each
//! handed whole to the module it configures; kebab-case keys, durations typed (`Duration`, the
//! unit in the key, `units.rs`), unknown keys rejected, and a misplaced key or one of an
//! earlier version told where it goes (`hints.rs`).
//!
//! Each section lives in a file of its own, with its defaults, its checks and what a reload
//! does with each of its keys (the `Section` trait: every key named, so that a new one must be
//! declared live or restart-only where it is defined). This file puts them together: the
//! loading, the flags over the file, and what a reload changed.
//!
//! Precedence, lowest first: built-in defaults ([`Config::default`]), the file given with
//! `--config`, then command-line flags. `examples/config.toml` lists every key with its
//! default. This module depends on nothing else in the crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod acme;
mod audit;
mod dashboard;
mod hints;
mod limits;
mod listeners;
mod pdns;
mod store;
mod transfers;
mod units;
mod updates;

pub use self::acme::Acme;
pub use self::audit::Audit;
pub use self::dashboard::{Dashboard, MAX_SESSION_LIFETIME};
pub use self::limits::Limits;
pub use self::listeners::Listeners;
pub use self::pdns::{Pdns, PdnsApi};
pub use self::store::{StoreConfig, Synchronous};
pub use self::transfers::{Transfers, notify_address};
pub use self::updates::{Updates, WIDEST_TRUSTED_V4, WIDEST_TRUSTED_V6};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`] (syntax, unknown key, wrong type).
    #[error("invalid config at line {line}: {message}")]
    Parse {
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong, on one line.
        message: String,
    },
    /// A value is out of its range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Every option of the service, by the part of the program it configures: each section is
/// handed whole to its module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Log filter (`info`, `debug`, `certadns_ddns=debug,info`...); `RUST_LOG` overrides it.
    pub log_level: LogLevel,
    /// `text` (for people) or `json` (one object per line, for log shippers).
    pub log_format: LogFormat,
    /// `[store]`: the SQLite file and how it is written.
    pub store: StoreConfig,
    /// `[listeners]`: the sockets and what each connection may take.
    pub listeners: Listeners,
    /// `[updates]`: the dyndns2 endpoints.
    pub updates: Updates,
    /// `[limits]`: abuse, password guessing, password checks.
    pub limits: Limits,
    /// `[audit]`: what the audit trail learns of addresses (country, AS, the operator's lists).
    pub audit: Audit,
    /// `[pdns]`: the pdns front-ends whose caches are purged.
    pub pdns: Pdns,
    /// `[dashboard]`: the account holder's pages on the update listener.
    pub dashboard: Dashboard,
    /// `[acme]`: ACME DNS-01 challenge values for the DDNS hosts.
    pub acme: Acme,
    /// `[transfers]`: zone transfers and NOTIFY to secondaries.
    pub transfers: Transfers,
}

/// The log filter, `info` by default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct LogLevel(pub String);

impl Default for LogLevel {
    fn default() -> Self {
        Self("info".into())
    }
}

/// How `serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people: time, level, span fields, message.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

impl Config {
    /// Parses and validates a config from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| hints::explain(&error, text))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Makes the relative paths of a file read from folder `base` relative to that folder, not
    /// to wherever the program happens to run: `certadns-ddns --config /etc/x/config.toml`
    /// then means the same database from every working directory.
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.store.database);
        if let Some(socket) = &mut self.listeners.backend_socket {
            resolve(socket);
        }
        for file in [&mut self.audit.geoip_database, &mut self.audit.asn_database]
            .into_iter()
            .flatten()
        {
            resolve(file);
        }
        for file in self.audit.ip_tags.values_mut() {
            resolve(file);
        }
    }

    /// Checks the values serde cannot: each section its own, then the log filter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            log_level,
            log_format: _,
            store,
            listeners,
            updates,
            limits,
            audit,
            pdns,
            dashboard,
            acme,
            transfers,
        } = self;
        listeners.validate()?;
        transfers.validate()?;
        limits.validate()?;
        updates.validate()?;
        pdns.validate()?;
        audit.validate()?;
        dashboard.validate()?;
        acme.validate()?;
        store.validate()?;
        if transfers.enabled() && listeners.update_dns_listen.is_none() {
            return Err(ConfigError::Invalid(
                "[transfers] allow-from or notify is set, but secondaries are served on the DNS \
                 listener: set [listeners] update-dns-listen (for example \"0.0.0.0:53\")"
                    .into(),
            ));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log_level.0) {
            return Err(ConfigError::Invalid(format!(
                "log-level {:?}: {error}",
                log_level.0
            )));
        }
        Ok(())
    }
}

impl Config {
    /// The `trusted-proxies` networks wider than [`WIDEST_TRUSTED_V4`] / [`WIDEST_TRUSTED_V6`],
    /// as written.
    pub fn wide_trusted_proxies(&self) -> Vec<String> {
        self.updates.wide_trusted_proxies()
    }

    /// What a valid configuration still does that an operator should hear of at every start
    /// and reload (logged at warn).
    pub fn warnings(&self) -> Vec<String> {
        let wide = self.wide_trusted_proxies();
        if wide.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "[updates] trusted-proxies {} allowed by trusted-proxies-allow-wide: anyone there \
             can forge X-Forwarded-For (the audit trail's source address, the per-address \
             throttles and the per-client connection cap)",
            wide.join(", ")
        )]
    }

    /// The keys (`section.key`, as in the file) whose value in effect differs in `next`:
    /// what a reload says it changed. Secrets are named, never shown.
    pub fn changed_keys(&self, next: &Self) -> Vec<String> {
        fn flatten(prefix: &str, value: serde_json::Value, into: &mut BTreeMap<String, String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        let key = if prefix.is_empty() {
                            key
                        } else {
                            format!("{prefix}.{key}")
                        };
                        flatten(&key, value, into);
                    }
                }
                leaf => {
                    into.insert(prefix.to_string(), leaf.to_string());
                }
            }
        }
        let keys = |config: &Self| {
            let mut keys = BTreeMap::new();
            // Serialising plain data to a JSON value cannot fail.
            if let Ok(value) = serde_json::to_value(config) {
                flatten("", value, &mut keys);
            }
            keys
        };
        let (before, after) = (keys(self), keys(next));
        let mut changed: Vec<String> = after
            .iter()
            .filter(|(key, value)| before.get(*key) != Some(*value))
            .map(|(key, _)| key.clone())
            .collect();
        changed.extend(
            before
                .keys()
                .filter(|key| !after.contains_key(*key))
                .cloned(),
        );
        changed.sort();
        changed
    }

    /// The keys whose value differs in `next` and which only a restart applies: the database,
    /// the sockets and what each connection of a listener may take, the log format, and
    /// whether the pages are served. Everything else a reload (SIGHUP) applies. Each section
    /// says which of its keys are which (its `Section` impl).
    pub fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        let Self {
            log_level: _,
            log_format,
            store,
            listeners,
            updates,
            limits,
            audit,
            pdns,
            dashboard,
            acme,
            transfers,
        } = self;
        let mut keys = changed(&[("log-format", *log_format != next.log_format)]);
        keys.extend(store.restart_needed(&next.store));
        keys.extend(listeners.restart_needed(&next.listeners));
        keys.extend(updates.restart_needed(&next.updates));
        keys.extend(limits.restart_needed(&next.limits));
        keys.extend(audit.restart_needed(&next.audit));
        keys.extend(pdns.restart_needed(&next.pdns));
        keys.extend(dashboard.restart_needed(&next.dashboard));
        keys.extend(acme.restart_needed(&next.acme));
        keys.extend(transfers.restart_needed(&next.transfers));
        keys
    }

    /// `next` as a reload applies it: its values, but those of `self` (running) where only a
    /// restart would apply them ([`Config::restart_needed`]).
    pub fn reloaded(&self, next: &Self) -> Self {
        let Self {
            log_level: _,
            log_format,
            store,
            listeners,
            updates,
            limits,
            audit,
            pdns,
            dashboard,
            acme,
            transfers,
        } = self;
        Self {
            log_level: next.log_level.clone(),
            log_format: *log_format,
            store: store.reloaded(&next.store),
            listeners: listeners.reloaded(&next.listeners),
            updates: updates.reloaded(&next.updates),
            limits: limits.reloaded(&next.limits),
            audit: audit.reloaded(&next.audit),
            pdns: pdns.reloaded(&next.pdns),
            dashboard: dashboard.reloaded(&next.dashboard),
            acme: acme.reloaded(&next.acme),
            transfers: transfers.reloaded(&next.transfers),
        }
    }
}

/// A section as it is in effect, read where it is used and swapped whole by a reload (SIGHUP).
/// Cheap to clone: every clone sees the same.
pub type Live<T> = std::sync::Arc<arc_swap::ArcSwap<T>>;

/// The sections a reload swaps under the running update listener, each handed whole to the
/// handlers that read it: no handler keeps a copy of its own.
#[derive(Debug, Clone)]
pub struct LiveSections {
    /// `[updates]`: the update endpoints, and the body limits and public URL every handler of
    /// the listener uses.
    pub updates: Live<Updates>,
    /// `[acme]`: the ACME endpoints and `txt=`.
    pub acme: Live<Acme>,
    /// `[dashboard]`: the pages.
    pub dashboard: Live<Dashboard>,
    /// `[transfers]`: who may transfer zones from the DNS listener, and whom it notifies.
    pub transfers: Live<Transfers>,
}

impl LiveSections {
    /// The sections of `config`.
    pub fn new(config: &Config) -> Self {
        fn live<T>(section: T) -> Live<T> {
            std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(section))
        }
        Self {
            updates: live(config.updates.clone()),
            acme: live(config.acme.clone()),
            dashboard: live(config.dashboard.clone()),
            transfers: live(config.transfers.clone()),
        }
    }

    /// Puts `config`'s sections in effect, from the next request on.
    pub fn apply(&self, config: &Config) {
        self.updates
            .store(std::sync::Arc::new(config.updates.clone()));
        self.acme.store(std::sync::Arc::new(config.acme.clone()));
        self.dashboard
            .store(std::sync::Arc::new(config.dashboard.clone()));
        self.transfers
            .store(std::sync::Arc::new(config.transfers.clone()));
    }
}

/// One section of the file, as a reload takes it. Each section names every one of its keys
/// in [`Section::restart_needed`] (a destructuring without `..`), so a new key does not build
/// until it is declared live or restart-only, in the section it belongs to.
trait Section: Sized {
    /// The keys (`section.key`) whose value differs in `next` and which only a restart
    /// applies.
    fn restart_needed(&self, next: &Self) -> Vec<&'static str>;
    /// `next` as a reload applies it: its live values, `self`'s restart-only ones.
    fn reloaded(&self, next: &Self) -> Self;
    /// The values serde cannot check.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The keys of `checks` whose flag is set.
fn changed(checks: &[(&'static str, bool)]) -> Vec<&'static str> {
    checks
        .iter()
        .filter_map(|(key, changed)| changed.then_some(*key))
        .collect()
}

/// Where `serve`'s configuration comes from: the `--config` file (if any) and the command-line
/// flags that override it. Read at start, and again on SIGHUP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSource {
    /// The `--config` file; None: the defaults.
    pub file: Option<PathBuf>,
    /// `--db`.
    pub database: Option<PathBuf>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
    /// `serve --backend-listen`.
    pub backend_listen: Option<SocketAddr>,
    /// `serve --backend-socket`.
    pub backend_socket: Option<PathBuf>,
}

impl ConfigSource {
    /// Reads the file (or takes the defaults), applies the flags, and validates the result
    /// (the flags may have moved a listener beyond loopback).
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(database) = &self.database {
            config.store.database.clone_from(database);
        }
        if let Some(listen) = self.listen {
            config.listeners.listen = listen;
        }
        if let Some(backend_listen) = self.backend_listen {
            config.listeners.backend_listen = backend_listen;
        }
        if let Some(backend_socket) = &self.backend_socket {
            config.listeners.backend_socket = Some(backend_socket.clone());
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod test {
    use std::time::Duration;

    use ipnet::IpNet;

    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let example = include_str!("../../examples/config.toml");
        let mut config = Config::from_toml(example).unwrap();
        // The package's database; the default is ./certadns.db.
        assert_eq!(
            config.store.database,
            Path::new("/var/lib/certadns-ddns/certadns.db")
        );
        config.store.database = Config::default().store.database;
        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_section_twice_or_a_top_level_key_below_a_section_is_named() {
        let twice = Config::from_toml("[listeners]\n[store]\n[listeners]\nmax-connections = 9\n")
            .unwrap_err()
            .to_string();
        assert!(
            twice.starts_with("invalid config at line 3: [listeners] appears twice"),
            "{twice}"
        );
        let key =
            Config::from_toml("[listeners]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            key.contains("`listen` is set twice in [listeners]"),
            "{key}"
        );
        let top = Config::from_toml("[store]\nlog-level = \"debug\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            top.contains("`log-level` is a top-level key: put it above the first [section]"),
            "{top}"
        );
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[store]\ndatabase = \"data/x.db\"\n[listeners]\nbackend-socket = \"/run/b.sock\"\n\
             [audit.ip-tags]\nvpn = \"vpn.txt\"\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.store.database, dir.path().join("data/x.db"));
        assert_eq!(
            config.listeners.backend_socket.as_deref(),
            Some(Path::new("/run/b.sock"))
        );
        assert_eq!(config.audit.ip_tags["vpn"], dir.path().join("vpn.txt"));
    }

    #[test]
    fn keys_are_kebab_case_and_typed() {
        let config = Config::from_toml(
            r#"
            [listeners]
            listen = "0.0.0.0:80"
            backend-allow-from = ["0.0.0.0/0"]
            [updates]
            trusted-proxies = ["203.0.113.0/24"]
            [store]
            synchronous = "normal"
            busy-timeout-ms = 250
            [limits]
            auth-known-client-days = 2
            "#,
        )
        .unwrap();
        assert_eq!(config.listeners.listen.port(), 80);
        assert_eq!(
            config.updates.trusted_proxies,
            ["203.0.113.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(config.store.synchronous, Synchronous::Normal);
        assert_eq!(config.store.busy_timeout, Duration::from_millis(250));
        assert_eq!(
            config.limits.auth_known_client,
            Duration::from_secs(2 * 24 * 3600)
        );
        let with_pdns = Config::from_toml(
            "[[pdns.api]]\napi-url = \"http://127.0.0.1:8082\"\napi-key = \"k\"\n\
             [[pdns.api]]\napi-url = \"http://10.0.0.2:8082\"\napi-key = \"k2\"\nserver-id = \"other\"\n",
        )
        .unwrap();
        assert_eq!(with_pdns.pdns.api.len(), 2);
        assert_eq!(with_pdns.pdns.api[0].server_id, "localhost");
        assert_eq!(with_pdns.pdns.api[1].server_id, "other");
        assert!(
            Config::from_toml("[[pdns.api]]\napi-url = \"http://x\"\n").is_err(),
            "the key is required"
        );
        let https =
            Config::from_toml("[[pdns.api]]\napi-url = \"https://x:8082\"\napi-key = \"k\"\n")
                .unwrap_err()
                .to_string();
        assert!(https.contains("only http://"), "{https}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let typo = Config::from_toml("[listeners]\nlisen = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(
            typo.starts_with("invalid config at line 2: unknown field `lisen`"),
            "{typo}"
        );
        assert!(!typo.contains('\n'), "{typo}");
        assert!(Config::from_toml("[store]\nbusy_timeout_ms = 1").is_err());
        assert!(Config::from_toml("[store]\nsynchronous = \"off\"").is_err());
        assert!(Config::from_toml("[listeners]\nmax-header-bytes = 100").is_err());
        assert!(Config::from_toml("[updates]\ntrusted-proxies = [\"not a net\"]").is_err());
        assert!(Config::from_toml("[limits]\nabuse-burst = 0").is_err());
        assert!(Config::from_toml("[limits]\nauth-known-client-days = 1e100").is_err());
        let replaced = Config::from_toml("[limits]\nabuse-min-interval-ms = 1000")
            .unwrap_err()
            .to_string();
        assert!(
            replaced.contains("was replaced") && replaced.contains("abuse-burst"),
            "{replaced}"
        );
    }

    #[test]
    fn a_flat_file_of_earlier_versions_is_told_where_each_key_went() {
        for (key, section) in [
            ("listen = \"127.0.0.1:1\"", "[listeners]"),
            ("database = \"x.db\"", "[store]"),
            ("abuse-burst = 3", "[limits]"),
            ("always-200 = true", "[updates]"),
            ("purge-wait-ms = 10", "[pdns]"),
        ] {
            let error = Config::from_toml(key).unwrap_err().to_string();
            assert!(error.contains(section), "{key}: {error}");
        }
        let pdns = Config::from_toml("[[pdns]]\napi-url = \"http://x\"\napi-key = \"k\"")
            .unwrap_err()
            .to_string();
        assert!(pdns.contains("[[pdns.api]]"), "{pdns}");
    }

    #[test]
    fn the_audit_section_names_databases_and_tag_lists() {
        let config = Config::from_toml(
            r#"
            [audit]
            geoip-database = "/var/lib/GeoIP/GeoLite2-Country.mmdb"
            asn-database = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
            reload-check-secs = 5
            [audit.ip-tags]
            tor-exit = "/var/lib/certadns/tor-exits.txt"
            hosting = "/var/lib/certadns/hosting.txt"
            "#,
        )
        .unwrap();
        let audit = &config.audit;
        assert_eq!(
            audit.geoip_database.as_deref(),
            Some(Path::new("/var/lib/GeoIP/GeoLite2-Country.mmdb"))
        );
        assert!(audit.asn_database.is_some());
        assert_eq!(audit.reload_check, Duration::from_secs(5));
        assert_eq!(
            audit.ip_tags.keys().collect::<Vec<_>>(),
            ["hosting", "tor-exit"]
        );
        for bad in ["Tor", "asn:1", "", "-x", "a b", &"x".repeat(64)] {
            let error = Config::from_toml(&format!(
                "[audit.ip-tags]
{bad:?} = \"/x\""
            ))
            .unwrap_err()
            .to_string();
            assert!(error.contains("tag name"), "{bad:?}: {error}");
        }
        assert!(Config::from_toml("[audit]\nreload-check-secs = 0").is_err());
        let top = Config::from_toml("geoip-database = \"/x.mmdb\"")
            .unwrap_err()
            .to_string();
        assert!(top.contains("[audit]"), "{top}");
        let tags = Config::from_toml("[ip-tags]\ntor = \"/x\"")
            .unwrap_err()
            .to_string();
        assert!(tags.contains("[audit.ip-tags]"), "{tags}");
    }

    #[test]
    fn a_backend_beyond_loopback_needs_an_explicit_allow_list() {
        let defaults = Config::default();
        assert!(
            defaults
                .listeners
                .backend_allowed()
                .iter()
                .all(|net| net.addr().is_loopback())
        );
        for exposed in [
            "backend-listen = \"0.0.0.0:8081\"",
            "backend-listen = \"[::]:8081\"",
            "backend-tcp-listen = \"192.0.2.1:8083\"",
        ] {
            let error = Config::from_toml(&format!("[listeners]\n{exposed}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("backend-allow-from"), "{exposed}: {error}");
            let allowed =
                format!("[listeners]\n{exposed}\nbackend-allow-from = [\"192.0.2.0/24\"]");
            let config = Config::from_toml(&allowed).unwrap();
            assert_eq!(
                config.listeners.backend_allowed(),
                ["192.0.2.0/24".parse::<IpNet>().unwrap()]
            );
        }
        assert!(Config::from_toml("[listeners]\nbackend-tcp-listen = \"127.0.0.1:8083\"").is_ok());
    }

    /// Every key, changed alone: `restart_needed` names exactly it when a reload keeps the
    /// running value, and nothing when a reload takes the new one. The two halves of each
    /// section's `Section` impl cannot drift apart, and the names are the file's.
    #[test]
    fn each_key_is_either_named_for_a_restart_or_applied_by_a_reload() {
        fn leaves(prefix: &str, value: &serde_json::Value, into: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        let path = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        leaves(&path, value, into);
                    }
                }
                _ => into.push(prefix.to_string()),
            }
        }
        /// `value` changed at `path` to another value of its kind; None where there is none
        /// to make (an unset option, an empty list or map).
        fn changed(value: &serde_json::Value, path: &str) -> Option<serde_json::Value> {
            use serde_json::Value;
            let mut value = value.clone();
            let leaf = path
                .split('.')
                .try_fold(&mut value, |node, key| node.get_mut(key))?;
            *leaf = match leaf.take() {
                Value::Bool(yes) => Value::Bool(!yes),
                Value::Number(number) => Value::from(number.as_u64()? + 1),
                Value::String(text) => Value::String(match text.as_str() {
                    "info" => "debug".into(),
                    "text" => "json".into(),
                    "full" => "normal".into(),
                    other if other.contains(':') => "127.0.0.2:9999".into(),
                    other => format!("{other}x"),
                }),
                Value::Array(mut items) if !items.is_empty() => {
                    items.pop();
                    Value::Array(items)
                }
                // Unset options, set.
                Value::Null if path.ends_with("-listen") => "127.0.0.3:5300".into(),
                Value::Null if path.ends_with("-socket") => "/run/x.sock".into(),
                Value::Null if path.ends_with("-database") => "/x.mmdb".into(),
                Value::Null if path.ends_with("allow-from") => serde_json::json!(["10.0.0.0/8"]),
                Value::Null if path.ends_with("public-url") => "https://ddns.example.net".into(),
                _ => return None,
            };
            Some(value)
        }
        let running = Config::default();
        let value = serde_json::to_value(&running).unwrap();
        let mut keys = Vec::new();
        leaves("", &value, &mut keys);
        let mut tried = 0;
        for key in keys {
            let Some(next) = changed(&value, &key) else {
                continue;
            };
            let next: Config = serde_json::from_value(next).unwrap_or_else(|error| {
                panic!("{key}: the changed value does not read back: {error}")
            });
            assert_ne!(next, running, "{key} did not change");
            tried += 1;
            let restart = running.restart_needed(&next);
            let reloaded = running.reloaded(&next);
            if restart.is_empty() {
                assert_eq!(
                    reloaded, next,
                    "{key} is live, but a reload keeps the old value"
                );
            } else {
                assert_eq!(restart, [key.as_str()], "{key} named as something else");
                assert_eq!(
                    reloaded, running,
                    "{key} needs a restart, but a reload takes it"
                );
            }
        }
        assert!(tried >= 46, "only {tried} keys tried");
    }

    #[test]
    fn a_reload_keeps_what_only_a_restart_applies_and_names_it() {
        let running = Config::from_toml(
            "[store]\ndatabase = \"/a.db\"\n[listeners]\nlisten = \"127.0.0.1:8080\"",
        )
        .unwrap();
        let next = Config::from_toml(
            "log-level = \"debug\"\nlog-format = \"json\"\n[store]\ndatabase = \"/b.db\"\n\
             [listeners]\nlisten = \"127.0.0.1:9090\"\n\
             backend-allow-from = [\"192.0.2.0/24\"]\n\
             [limits]\nabuse-burst = 9\n[dashboard]\nenabled = false\nhistory-page-size = 7",
        )
        .unwrap();
        assert_eq!(
            running.restart_needed(&next),
            [
                "log-format",
                "store.database",
                "listeners.listen",
                "dashboard.enabled"
            ]
        );
        let reloaded = running.reloaded(&next);
        // Live: taken from the file.
        assert_eq!(reloaded.log_level.0, "debug");
        assert_eq!(reloaded.limits.abuse_burst, 9);
        assert_eq!(reloaded.dashboard.history_page_size, 7);
        assert_eq!(
            reloaded.listeners.backend_allow_from,
            Some(vec!["192.0.2.0/24".parse().unwrap()])
        );
        // Restart only: as running, and so named again by the next reload.
        assert_eq!(reloaded.log_format, LogFormat::Text);
        assert_eq!(reloaded.store.database, PathBuf::from("/a.db"));
        assert_eq!(reloaded.listeners.listen, running.listeners.listen);
        assert!(reloaded.dashboard.enabled);
        assert_eq!(reloaded.restart_needed(&next).len(), 4);
        assert!(running.restart_needed(&running.clone()).is_empty());
    }

    #[test]
    fn the_command_line_wins_over_the_file_at_each_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[listeners]\nlisten = \"127.0.0.1:8080\"").unwrap();
        let source = ConfigSource {
            file: Some(file.clone()),
            database: Some(PathBuf::from("/flag.db")),
            listen: Some("127.0.0.1:7070".parse().unwrap()),
            ..ConfigSource::default()
        };
        let config = source.load().unwrap();
        assert_eq!(config.listeners.listen.port(), 7070);
        assert_eq!(config.store.database, PathBuf::from("/flag.db"));
        // A flag that moves the backend beyond loopback is checked as the file would be.
        let exposed = ConfigSource {
            backend_listen: Some("0.0.0.0:8081".parse().unwrap()),
            ..source
        };
        assert!(exposed.load().is_err());
        assert!(
            Config::from_toml("log-level = \"info,[\"")
                .unwrap_err()
                .to_string()
                .contains("log-level")
        );
    }
}
