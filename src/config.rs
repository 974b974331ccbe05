//! The configuration: one TOML file with a section per part of the service (`[store]`,
//! `[listeners]`, `[updates]`, `[limits]`, `[audit]`, `[pdns]`), each handed whole to the module it
//! configures; kebab-case keys, durations typed (`Duration`, the unit in the key), unknown keys
//! rejected, and a key of the flat files of earlier versions told where it went.
//!
//! Precedence, lowest first: built-in defaults ([`Config::default`]), the file given with
//! `--config`, then command-line flags. `examples/config.toml` lists every key with its
//! default. This module depends on nothing else in the crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The shortest IPv4 prefix `trusted-proxies` takes without `trusted-proxies-allow-wide`.
pub const WIDEST_TRUSTED_V4: u8 = 8;
/// The shortest IPv6 prefix `trusted-proxies` takes without `trusted-proxies-allow-wide`.
pub const WIDEST_TRUSTED_V6: u8 = 32;
/// The longest `session-lifetime-secs`: 30 days.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

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

/// Keys of earlier versions, and what to use instead.
const REPLACED_KEYS: &[(&str, &str)] = &[(
    "abuse-min-interval-ms",
    "flagging now needs a sustained excess, set with abuse-burst, abuse-refill-ms and \
     abuse-flag-after-secs in [limits] (see examples/config.toml)",
)];

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

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database file; created from `schema.sql` when missing.
    pub database: PathBuf,
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// How long a write waits for the database lock before answering `dnserr`.
    #[serde(rename = "busy-timeout-ms", with = "millis")]
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

/// `[listeners]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Listeners {
    /// Address of the DynDNS update endpoints.
    pub listen: SocketAddr,
    /// Address of the PowerDNS remote backend's HTTP connector (base path `/dns`).
    pub backend_listen: SocketAddr,
    /// Path of the PowerDNS remote backend's unix socket; none by default.
    pub backend_socket: Option<PathBuf>,
    /// Address of the backend's line-JSON TCP listener, which `certadns-ddns relay` (pdns's
    /// `pipe` connector on another host) connects to; none by default.
    pub backend_tcp_listen: Option<SocketAddr>,
    /// Networks allowed to connect to the backend's network listeners (HTTP and TCP); unset
    /// means loopback only, and then both listeners must be on loopback.
    pub backend_allow_from: Option<Vec<IpNet>>,
    /// Address of the metrics and health listener (`/metrics`, `/health/live`,
    /// `/health/ready`); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address or an IPv6 /64) may hold open on the update
    /// listener; `trusted-proxies` of `[updates]` are exempt. 0: no cap.
    pub max_connections_per_client: usize,
    /// Time allowed from a connection's opening to its first byte.
    #[serde(rename = "first-byte-timeout-secs", with = "secs")]
    pub first_byte_timeout: Duration,
    /// Time allowed for a client to send the request headers.
    #[serde(rename = "header-read-timeout-secs", with = "secs")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(rename = "shutdown-grace-secs", with = "secs")]
    pub shutdown_grace: Duration,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            backend_socket: None,
            backend_tcp_listen: None,
            metrics_listen: None,
            backend_allow_from: None,
            max_connections: 1024,
            max_connections_per_client: 64,
            first_byte_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Listeners {
    /// Who may connect to the backend's network listeners: `backend-allow-from`, or loopback.
    pub fn backend_allowed(&self) -> Vec<IpNet> {
        self.backend_allow_from.clone().unwrap_or_else(|| {
            ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("valid loopback CIDR"))
                .collect()
        })
    }
}

/// `[updates]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Updates {
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Accept `trusted-proxies` networks wider than [`WIDEST_TRUSTED_V4`] /
    /// [`WIDEST_TRUSTED_V6`]: whoever is in them can forge the source address of the audit
    /// trail and of every per-address limit.
    pub trusted_proxies_allow_wide: bool,
    /// Answer every dyndns2 code with HTTP 200 (ddclient ignores non-2xx answers but 401).
    #[serde(rename = "always-200")]
    pub always_200: bool,
    /// Public base URL of the update endpoints, as clients reach them (for `update-help`).
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed for a client to send the request body.
    #[serde(rename = "body-read-timeout-secs", with = "secs")]
    pub body_read_timeout: Duration,
}

impl Default for Updates {
    fn default() -> Self {
        Self {
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("valid default CIDR"))
                .collect(),
            trusted_proxies_allow_wide: false,
            always_200: false,
            public_url: None,
            max_body_bytes: 16 * 1024,
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Limits {
    /// Flag hosts whose update requests stay above the allowed rate (`abuse`, 429).
    pub abuse_detection: bool,
    /// Update requests for one host of one user that may come at once.
    pub abuse_burst: u32,
    /// One more request is allowed every this long (1 s: the spec's once a second).
    #[serde(rename = "abuse-refill-ms", with = "millis")]
    pub abuse_refill: Duration,
    /// How long requests must stay above that rate before the host is flagged.
    #[serde(rename = "abuse-flag-after-secs", with = "secs")]
    pub abuse_flag_after: Duration,
    /// How long a flagged host must stay under the rate before the flag lifts.
    #[serde(rename = "abuse-cooldown-secs", with = "secs")]
    pub abuse_cooldown: Duration,
    /// Authentication failures within the window that make a client or login throttled; 0: off.
    pub auth_failure_limit: u32,
    /// The window authentication failures are counted in.
    #[serde(rename = "auth-failure-window-secs", with = "secs")]
    pub auth_failure_window: Duration,
    /// How long a throttled client or login is refused without checking passwords.
    #[serde(rename = "auth-failure-cooldown-secs", with = "secs")]
    pub auth_failure_cooldown: Duration,
    /// How long a client address that authenticated as a login stays exempt from that login's
    /// failure throttle; 0: no exemption.
    #[serde(rename = "auth-known-client-days", with = "days")]
    pub auth_known_client: Duration,
    /// Password checks (argon2id, about 19 MiB each) run at once; 0: one per CPU core.
    pub password_check_concurrency: usize,
    /// Password checks that may wait for one of those places; beyond them, `911` (503).
    pub password_check_queue: usize,
    /// How many recent successful password checks to remember (0 turns the cache off).
    pub password_cache_size: usize,
    /// How long a remembered password check stays valid.
    #[serde(rename = "password-cache-ttl-secs", with = "secs")]
    pub password_cache_ttl: Duration,
    /// How long a revoked API key stays listed before it is deleted.
    #[serde(rename = "revoked-key-retention-days", with = "days")]
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

/// `[audit]`: the files the audit trail's country and tags come from. Each is read at start (a
/// missing or unreadable one stops the start) and read again when it is replaced, so that
/// `geoipupdate` or a cron job can refresh it under the running service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Audit {
    /// A MaxMind-format (MMDB) database with countries: GeoLite2-Country or -City, DB-IP Lite
    /// Country, IPinfo Lite... (`country.iso_code` or `country_code`). None: no countries.
    pub geoip_database: Option<PathBuf>,
    /// A MaxMind-format database with AS numbers (GeoLite2-ASN, IPinfo Lite): `asn:NUMBER` tags.
    pub asn_database: Option<PathBuf>,
    /// `[audit.ip-tags]`: tag name → file of CIDRs (one per line, `#` or `;` comments).
    pub ip_tags: BTreeMap<String, PathBuf>,
    /// How often the files are checked for a replacement (inode, size, modification time);
    /// SIGHUP reads them all again at once.
    #[serde(rename = "reload-check-secs", with = "secs")]
    pub reload_check: Duration,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            geoip_database: None,
            asn_database: None,
            ip_tags: BTreeMap::new(),
            reload_check: Duration::from_secs(60),
        }
    }
}

/// `[dashboard]`: the account holder's pages (`/dashboard`), served on the update listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Dashboard {
    /// Serve the pages; `false` answers 404 under `/dashboard` (the update endpoints alone).
    pub enabled: bool,
    /// How long a sign-in lasts; sign-out, disabling the user or a new password end it sooner.
    #[serde(rename = "session-lifetime-secs", with = "secs")]
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

/// `[acme]`: TXT values at `_acme-challenge.<host>` set by the host's owner (lego's `httpreq`,
/// acme-dns's `/update`, `txt=` on `/nic/update`), so that home servers get certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Acme {
    /// Serve the endpoints; `false` answers 404 on them, and 400 to `txt=` on the update
    /// endpoints.
    pub enabled: bool,
    /// How long a value is served unless cleaned up before.
    #[serde(rename = "value-lifetime-secs", with = "secs")]
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

/// Whether `name` can name an `[audit.ip-tags]` list: lower-case letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit, at most 63 bytes; no `:` (`asn:` is taken). (The
/// names of the special-purpose range tags are refused when the lists are loaded.)
fn valid_tag_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_.".contains(byte))
}

/// `[pdns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Pdns {
    /// How long an update's answer waits for the purge of pdns's caches.
    #[serde(rename = "purge-wait-ms", with = "millis")]
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

/// Durations written as whole milliseconds (the key says `-ms`).
mod millis {
    use std::time::Duration;

    /// Writes whole milliseconds (for [`super::Config::changed_keys`]).
    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads whole milliseconds.
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

/// Durations written as whole seconds (the key says `-secs`).
mod secs {
    use std::time::Duration;

    /// Writes whole seconds (for [`super::Config::changed_keys`]).
    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }

    /// Reads whole seconds.
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
    }
}

/// Durations written as whole days (the key says `-days`).
mod days {
    use std::time::Duration;

    /// Writes whole days (for [`super::Config::changed_keys`]).
    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs() / (24 * 3600))
    }

    /// Reads whole days.
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let days = <u64 as serde::Deserialize>::deserialize(d)?;
        days.checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| serde::de::Error::custom("too many days"))
    }
}

/// Where each key of the flat configuration of earlier versions went (and the audit keys, which
/// are as easily written at the top level).
const SECTIONS: &[(&str, &[&str])] = &[
    ("store", &["database", "synchronous", "busy-timeout-ms"]),
    (
        "listeners",
        &[
            "listen",
            "backend-listen",
            "backend-socket",
            "backend-tcp-listen",
            "backend-allow-from",
            "metrics-listen",
            "max-connections",
            "max-connections-per-client",
            "first-byte-timeout-secs",
            "header-read-timeout-secs",
            "max-header-bytes",
            "shutdown-grace-secs",
        ],
    ),
    (
        "updates",
        &[
            "trusted-proxies",
            "trusted-proxies-allow-wide",
            "always-200",
            "public-url",
            "max-body-bytes",
            "body-read-timeout-secs",
        ],
    ),
    (
        "limits",
        &[
            "abuse-detection",
            "abuse-burst",
            "abuse-refill-ms",
            "abuse-flag-after-secs",
            "abuse-cooldown-secs",
            "auth-failure-limit",
            "auth-failure-window-secs",
            "auth-failure-cooldown-secs",
            "auth-known-client-days",
            "password-check-concurrency",
            "password-check-queue",
            "password-cache-size",
            "password-cache-ttl-secs",
            "revoked-key-retention-days",
        ],
    ),
    ("pdns", &["purge-wait-ms"]),
    // Not keys of the flat files, but written at the top level as easily.
    (
        "audit",
        &["geoip-database", "asn-database", "reload-check-secs"],
    ),
];

impl Config {
    /// Parses and validates a config from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| {
            let mut message = error
                .message()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if let Some((old, new)) = REPLACED_KEYS
                .iter()
                .find(|(old, _)| message.starts_with(&format!("unknown field `{old}`")))
            {
                message = format!("`{old}` was replaced: {new}");
            } else if let Some((section, key)) = SECTIONS.iter().find_map(|(section, keys)| {
                keys.iter()
                    .find(|key| message.starts_with(&format!("unknown field `{key}`")))
                    .map(|key| (section, key))
            }) {
                message = format!(
                    "`{key}` belongs in the [{section}] section now (see examples/config.toml)"
                );
            } else if text
                .parse::<toml::Table>()
                .is_ok_and(|table| table.get("pdns").is_some_and(toml::Value::is_array))
            {
                message = "[[pdns]] tables are [[pdns.api]] now (see examples/config.toml)".into();
            } else if message.starts_with("unknown field `ip-tags`") {
                message = "the tag lists are [audit.ip-tags] (see examples/config.toml)".into();
            } else if let Some(key) = ["log-level", "log-format"]
                .iter()
                .find(|key| message.starts_with(&format!("unknown field `{key}`")))
            {
                message = format!(
                    "`{key}` is a top-level key: put it above the first [section] (in TOML, \
                     every key after a [section] line belongs to that section)"
                );
            } else if message.starts_with("duplicate key") {
                let offset = error.span().map_or(0, |span| span.start);
                let offset = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
                let line = text[offset..].lines().next().unwrap_or_default().trim();
                message = if line.starts_with('[') {
                    format!(
                        "{line} appears twice: a section is written once; put these keys in the \
                         first {line} (an appended section must edit the existing one)"
                    )
                } else {
                    let key = line.split('=').next().unwrap_or_default().trim();
                    match text[..offset]
                        .lines()
                        .rev()
                        .map(str::trim)
                        .find(|line| line.starts_with('['))
                    {
                        Some(section) => format!("`{key}` is set twice in {section}"),
                        None => format!("`{key}` is set twice"),
                    }
                };
            }
            ConfigError::Parse {
                line: error
                    .span()
                    .map_or(1, |span| text[..span.start].matches('\n').count() + 1),
                message,
            }
        })?;
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

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (listeners, limits) = (&self.listeners, &self.limits);
        if listeners.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "max-header-bytes must be at least 8192".into(),
            ));
        }
        if limits.abuse_burst == 0
            || limits.abuse_refill.is_zero()
            || limits.abuse_flag_after.is_zero()
        {
            return Err(ConfigError::Invalid(
                "abuse-burst, abuse-refill-ms and abuse-flag-after-secs must be at least 1 \
                 (abuse-detection = false turns flagging off)"
                    .into(),
            ));
        }
        if listeners.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max-connections must be at least 1".into(),
            ));
        }
        if listeners.header_read_timeout.is_zero()
            || self.updates.body_read_timeout.is_zero()
            || listeners.first_byte_timeout.is_zero()
        {
            return Err(ConfigError::Invalid(
                "read timeouts must be at least 1 second".into(),
            ));
        }
        for pdns in &self.pdns.api {
            if !pdns.api_url.starts_with("http://") {
                return Err(ConfigError::Invalid(format!(
                    "[[pdns.api]] api-url {:?}: only http:// is supported (pdns's API on \
                     loopback or a private network; for another network, tunnel it)",
                    pdns.api_url
                )));
            }
        }
        if let Some(name) = self.audit.ip_tags.keys().find(|name| !valid_tag_name(name)) {
            return Err(ConfigError::Invalid(format!(
                "[audit.ip-tags] {name:?}: a tag name is lower-case letters, digits, '-', '_' \
                 and '.', at most 63, starting with a letter or digit"
            )));
        }
        if let Some(url) = &self.updates.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|rest| rest.is_empty() || rest.contains(['?', '#', ' '])) {
                return Err(ConfigError::Invalid(format!(
                    "public-url {url:?}: write the base URL clients reach the service at, \
                     http:// or https://, without query (e.g. \"https://ddns.example.net\")"
                )));
            }
        }
        if self.dashboard.session_lifetime.is_zero()
            || self.dashboard.session_lifetime > MAX_SESSION_LIFETIME
            || !(1..=500).contains(&self.dashboard.history_page_size)
        {
            return Err(ConfigError::Invalid(format!(
                "[dashboard] session-lifetime-secs must be 1 to {} (30 days), \
                 history-page-size 1 to 500",
                MAX_SESSION_LIFETIME.as_secs()
            )));
        }
        let wide = self.wide_trusted_proxies();
        if !wide.is_empty() && !self.updates.trusted_proxies_allow_wide {
            return Err(ConfigError::Invalid(format!(
                "[updates] trusted-proxies {}: wider than /{WIDEST_TRUSTED_V4} (IPv4) or \
                 /{WIDEST_TRUSTED_V6} (IPv6), so anyone there could forge X-Forwarded-For: \
                 the audit trail's source address, the per-address throttles and the \
                 per-client connection cap. List your proxies' own addresses, or set \
                 trusted-proxies-allow-wide = true if you mean it",
                wide.join(", ")
            )));
        }
        if !(60..=7 * 24 * 3600).contains(&self.acme.value_lifetime.as_secs()) {
            return Err(ConfigError::Invalid(
                "[acme] value-lifetime-secs must be 60 to 604800 (a week)".into(),
            ));
        }
        if self.audit.reload_check.is_zero() {
            return Err(ConfigError::Invalid(
                "reload-check-secs must be at least 1".into(),
            ));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log_level.0) {
            return Err(ConfigError::Invalid(format!(
                "log-level {:?}: {error}",
                self.log_level.0
            )));
        }
        if listeners.backend_allow_from.is_none() {
            let exposed = std::iter::once(listeners.backend_listen)
                .chain(listeners.backend_tcp_listen)
                .find(|address| !address.ip().is_loopback());
            if let Some(address) = exposed {
                return Err(ConfigError::Invalid(format!(
                    "the backend listens on {address}, beyond loopback, but backend-allow-from \
                     is not set: list the networks of your pdns servers (the backend serves \
                     every zone in full to whoever connects)"
                )));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The `trusted-proxies` networks wider than [`WIDEST_TRUSTED_V4`] / [`WIDEST_TRUSTED_V6`],
    /// as written.
    pub fn wide_trusted_proxies(&self) -> Vec<String> {
        self.updates
            .trusted_proxies
            .iter()
            .filter(|net| match net {
                IpNet::V4(net) => net.prefix_len() < WIDEST_TRUSTED_V4,
                IpNet::V6(net) => net.prefix_len() < WIDEST_TRUSTED_V6,
            })
            .map(ToString::to_string)
            .collect()
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
    /// whether the pages are served. Everything else a reload (SIGHUP) applies. (Every field is
    /// named here, so that a new key must be sorted into one kind or the other.)
    pub fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        let Self {
            log_level: _,
            log_format,
            store,
            listeners,
            updates: _,
            limits: _,
            audit: _,
            pdns: _,
            dashboard,
            acme: _,
        } = self;
        let StoreConfig {
            database,
            synchronous,
            busy_timeout,
        } = store;
        let Listeners {
            listen,
            backend_listen,
            backend_socket,
            backend_tcp_listen,
            backend_allow_from: _,
            metrics_listen,
            max_connections,
            max_connections_per_client,
            first_byte_timeout,
            header_read_timeout,
            max_header_bytes,
            shutdown_grace,
        } = listeners;
        let Dashboard {
            enabled,
            session_lifetime: _,
            history_page_size: _,
        } = dashboard;
        let (new_store, new_listeners) = (&next.store, &next.listeners);
        [
            ("log-format", *log_format != next.log_format),
            ("store.database", *database != new_store.database),
            ("store.synchronous", *synchronous != new_store.synchronous),
            (
                "store.busy-timeout-ms",
                *busy_timeout != new_store.busy_timeout,
            ),
            ("listeners.listen", *listen != new_listeners.listen),
            (
                "listeners.backend-listen",
                *backend_listen != new_listeners.backend_listen,
            ),
            (
                "listeners.backend-socket",
                *backend_socket != new_listeners.backend_socket,
            ),
            (
                "listeners.backend-tcp-listen",
                *backend_tcp_listen != new_listeners.backend_tcp_listen,
            ),
            (
                "listeners.metrics-listen",
                *metrics_listen != new_listeners.metrics_listen,
            ),
            (
                "listeners.max-connections",
                *max_connections != new_listeners.max_connections,
            ),
            (
                "listeners.max-connections-per-client",
                *max_connections_per_client != new_listeners.max_connections_per_client,
            ),
            (
                "listeners.first-byte-timeout-secs",
                *first_byte_timeout != new_listeners.first_byte_timeout,
            ),
            (
                "listeners.header-read-timeout-secs",
                *header_read_timeout != new_listeners.header_read_timeout,
            ),
            (
                "listeners.max-header-bytes",
                *max_header_bytes != new_listeners.max_header_bytes,
            ),
            (
                "listeners.shutdown-grace-secs",
                *shutdown_grace != new_listeners.shutdown_grace,
            ),
            ("dashboard.enabled", *enabled != next.dashboard.enabled),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }

    /// `next` as a reload applies it: its values, but those of `self` (running) where only a
    /// restart would apply them ([`Config::restart_needed`]).
    pub fn reloaded(&self, next: &Self) -> Self {
        Self {
            log_format: self.log_format,
            store: self.store.clone(),
            listeners: Listeners {
                backend_allow_from: next.listeners.backend_allow_from.clone(),
                ..self.listeners.clone()
            },
            dashboard: Dashboard {
                enabled: self.dashboard.enabled,
                ..next.dashboard.clone()
            },
            ..next.clone()
        }
    }
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
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let example = include_str!("../examples/config.toml");
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
