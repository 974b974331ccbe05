//! The configuration: one TOML file, kebab-case keys, unknown keys rejected.
//!
//! Precedence, lowest first: built-in defaults ([`Config::default`]), the file given with
//! `--config`, then command-line flags. `examples/config.toml` lists every key with its
//! default. This module depends on nothing else in the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Synchronous {
    /// A committed update survives a crash of the process, not a power loss or kernel crash:
    /// updates since the last checkpoint can be lost then (the file stays whole).
    Normal,
    /// A committed update survives a power loss too: each group commit waits for an fsync of
    /// the WAL, shared by every update in it (the default: about 4 % fewer committed updates
    /// a second, BENCHMARKS.md).
    Full,
}

/// A pdns front-end to purge, as configured under `[[pdns]]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
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
     abuse-flag-after-secs (see examples/config.toml)",
)];

/// Every option of the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// SQLite database file; created from `schema.sql` when missing.
    pub database: PathBuf,
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
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Answer every dyndns2 code with HTTP 200 (ddclient ignores non-2xx answers but 401).
    #[serde(rename = "always-200")]
    pub always_200: bool,
    /// Flag hosts whose update requests stay above the allowed rate (`abuse`, 429).
    pub abuse_detection: bool,
    /// Update requests for one host of one user that may come at once.
    pub abuse_burst: u32,
    /// One more request is allowed every this many ms (1000: the spec's once a second).
    pub abuse_refill_ms: u64,
    /// How long requests must stay above that rate before the host is flagged, in seconds.
    pub abuse_flag_after_secs: u64,
    /// How long a flagged host must stay under the rate before the flag lifts, in seconds.
    pub abuse_cooldown_secs: u64,
    /// Authentication failures within the window that make a client or login throttled; 0: off.
    pub auth_failure_limit: u32,
    /// The window authentication failures are counted in, in seconds.
    pub auth_failure_window_secs: u64,
    /// How long a throttled client or login is refused without checking passwords, in seconds.
    pub auth_failure_cooldown_secs: u64,
    /// How long (days) a client address that authenticated as a login stays exempt from that
    /// login's failure throttle; 0: no exemption.
    pub auth_known_client_days: u64,
    /// Public base URL of the update endpoints, as clients reach them (for `help`).
    pub public_url: Option<String>,
    /// pdns front-ends whose caches are purged after each change (`[[pdns]]` tables).
    pub pdns: Vec<PdnsApi>,
    /// How long an update's answer waits for the purge of pdns's caches, in ms.
    pub purge_wait_ms: u64,
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// How long a write waits for the database lock before answering `dnserr`, in ms.
    pub busy_timeout_ms: u64,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address or an IPv6 /64) may hold open on the update
    /// listener; `trusted-proxies` are exempt. 0: no cap.
    pub max_connections_per_client: usize,
    /// Time allowed from a connection's opening to its first byte, in seconds.
    pub first_byte_timeout_secs: u64,
    /// Time allowed for a client to send the request headers, in seconds.
    pub header_read_timeout_secs: u64,
    /// Time allowed for a client to send the request body, in seconds.
    pub body_read_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) accepted, in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Password checks (argon2id, about 19 MiB each) run at once; 0: one per CPU core.
    pub password_check_concurrency: usize,
    /// Password checks that may wait for one of those places; beyond them, `911` (503).
    pub password_check_queue: usize,
    /// How many recent successful password checks to remember (0 turns the cache off).
    pub password_cache_size: usize,
    /// How long a remembered password check stays valid, in seconds.
    pub password_cache_ttl_secs: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish, in seconds.
    pub shutdown_grace_secs: u64,
    /// Log filter (`info`, `debug`, `certadns_ddns=debug,info`...); `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: PathBuf::from("certadns.db"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            backend_socket: None,
            backend_tcp_listen: None,
            backend_allow_from: None,
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("valid default CIDR"))
                .collect(),
            always_200: false,
            abuse_detection: true,
            abuse_burst: 5,
            abuse_refill_ms: 1000,
            abuse_flag_after_secs: 5,
            abuse_cooldown_secs: 60,
            auth_failure_limit: 10,
            auth_failure_window_secs: 60,
            auth_failure_cooldown_secs: 300,
            auth_known_client_days: 30,
            public_url: None,
            pdns: Vec::new(),
            purge_wait_ms: 1000,
            synchronous: Synchronous::Full,
            busy_timeout_ms: 3000,
            max_connections: 1024,
            max_connections_per_client: 64,
            first_byte_timeout_secs: 5,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            password_check_concurrency: 0,
            password_check_queue: 64,
            password_cache_size: 10_000,
            password_cache_ttl_secs: 300,
            shutdown_grace_secs: 10,
            log_level: "info".to_string(),
        }
    }
}

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
        Self::from_toml(&text)
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "max-header-bytes must be at least 8192".into(),
            ));
        }
        if self.abuse_burst == 0 || self.abuse_refill_ms == 0 || self.abuse_flag_after_secs == 0 {
            return Err(ConfigError::Invalid(
                "abuse-burst, abuse-refill-ms and abuse-flag-after-secs must be at least 1 \
                 (abuse-detection = false turns flagging off)"
                    .into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max-connections must be at least 1".into(),
            ));
        }
        if self.header_read_timeout_secs == 0
            || self.body_read_timeout_secs == 0
            || self.first_byte_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "read timeouts must be at least 1 second".into(),
            ));
        }
        for pdns in &self.pdns {
            if !pdns.api_url.starts_with("http://") {
                return Err(ConfigError::Invalid(format!(
                    "[[pdns]] api-url {:?}: only http:// is supported (pdns's API on loopback \
                     or a private network; for another network, tunnel it)",
                    pdns.api_url
                )));
            }
        }
        if self.backend_allow_from.is_none() {
            let exposed = std::iter::once(self.backend_listen)
                .chain(self.backend_tcp_listen)
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

    /// Who may connect to the backend's network listeners: `backend-allow-from`, or loopback.
    pub fn backend_allowed(&self) -> Vec<IpNet> {
        self.backend_allow_from.clone().unwrap_or_else(|| {
            ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("valid loopback CIDR"))
                .collect()
        })
    }

    /// [`Config::busy_timeout_ms`] as a duration.
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
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
        assert_eq!(Config::from_toml(example).unwrap(), Config::default());
    }

    #[test]
    fn keys_are_kebab_case_and_typed() {
        let config = Config::from_toml(
            r#"
            listen = "0.0.0.0:80"
            trusted-proxies = ["203.0.113.0/24"]
            synchronous = "normal"
            busy-timeout-ms = 250
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 80);
        assert_eq!(
            config.trusted_proxies,
            ["203.0.113.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(config.synchronous, Synchronous::Normal);
        assert_eq!(config.busy_timeout(), Duration::from_millis(250));
        let with_pdns = Config::from_toml(
            "[[pdns]]\napi-url = \"http://127.0.0.1:8082\"\napi-key = \"k\"\n\
             [[pdns]]\napi-url = \"http://10.0.0.2:8082\"\napi-key = \"k2\"\nserver-id = \"other\"\n",
        )
        .unwrap();
        assert_eq!(with_pdns.pdns.len(), 2);
        assert_eq!(with_pdns.pdns[0].server_id, "localhost");
        assert_eq!(with_pdns.pdns[1].server_id, "other");
        assert!(
            Config::from_toml("[[pdns]]\napi-url = \"http://x\"\n").is_err(),
            "the key is required"
        );
        let https = Config::from_toml("[[pdns]]\napi-url = \"https://x:8082\"\napi-key = \"k\"\n")
            .unwrap_err()
            .to_string();
        assert!(https.contains("only http://"), "{https}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let typo = Config::from_toml("\nlisen = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(
            typo.starts_with("invalid config at line 2: unknown field `lisen`"),
            "{typo}"
        );
        assert!(!typo.contains('\n'), "{typo}");
        assert!(Config::from_toml("busy_timeout_ms = 1").is_err());
        assert!(Config::from_toml("synchronous = \"off\"").is_err());
        assert!(Config::from_toml("max-header-bytes = 100").is_err());
        assert!(Config::from_toml("trusted-proxies = [\"not a net\"]").is_err());
        assert!(Config::from_toml("abuse-burst = 0").is_err());
        let replaced = Config::from_toml("abuse-min-interval-ms = 1000")
            .unwrap_err()
            .to_string();
        assert!(
            replaced.contains("was replaced") && replaced.contains("abuse-burst"),
            "{replaced}"
        );
    }

    #[test]
    fn a_backend_beyond_loopback_needs_an_explicit_allow_list() {
        let defaults = Config::default();
        assert!(
            defaults
                .backend_allowed()
                .iter()
                .all(|net| net.addr().is_loopback())
        );
        for exposed in [
            "backend-listen = \"0.0.0.0:8081\"",
            "backend-listen = \"[::]:8081\"",
            "backend-tcp-listen = \"192.0.2.1:8083\"",
        ] {
            let error = Config::from_toml(exposed).unwrap_err().to_string();
            assert!(error.contains("backend-allow-from"), "{exposed}: {error}");
            let allowed = format!("{exposed}\nbackend-allow-from = [\"192.0.2.0/24\"]");
            let config = Config::from_toml(&allowed).unwrap();
            assert_eq!(
                config.backend_allowed(),
                ["192.0.2.0/24".parse::<IpNet>().unwrap()]
            );
        }
        assert!(Config::from_toml("backend-tcp-listen = \"127.0.0.1:8083\"").is_ok());
    }
}
