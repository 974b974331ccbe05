//! `[updates]`: the dyndns2 endpoints. Live: a reload applies all of it.

use std::time::Duration;

use super::{ConfigError, Section};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The shortest IPv4 prefix `trusted-proxies` takes without `trusted-proxies-allow-wide`.
pub const WIDEST_TRUSTED_V4: u8 = 8;

/// The shortest IPv6 prefix `trusted-proxies` takes without `trusted-proxies-allow-wide`.
pub const WIDEST_TRUSTED_V6: u8 = 32;

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
    #[serde(rename = "body-read-timeout-secs", with = "super::units::secs")]
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

impl Section for Updates {
    fn restart_needed(&self, _next: &Self) -> Vec<&'static str> {
        // Every key is live: named here, so that a new one is sorted on purpose.
        let Self {
            trusted_proxies: _,
            trusted_proxies_allow_wide: _,
            always_200: _,
            public_url: _,
            max_body_bytes: _,
            body_read_timeout: _,
        } = self;
        Vec::new()
    }

    fn reloaded(&self, next: &Self) -> Self {
        next.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.body_read_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "read timeouts must be at least 1 second".into(),
            ));
        }
        if let Some(url) = &self.public_url {
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
        let wide = self.wide_trusted_proxies();
        if !wide.is_empty() && !self.trusted_proxies_allow_wide {
            return Err(ConfigError::Invalid(format!(
                "[updates] trusted-proxies {}: wider than /{WIDEST_TRUSTED_V4} (IPv4) or \
                 /{WIDEST_TRUSTED_V6} (IPv6), so anyone there could forge X-Forwarded-For: \
                 the audit trail's source address, the per-address throttles and the \
                 per-client connection cap. List your proxies' own addresses, or set \
                 trusted-proxies-allow-wide = true if you mean it",
                wide.join(", ")
            )));
        }
        Ok(())
    }
}

impl Updates {
    /// `public-url` without a trailing slash: the base of the commands the pages show.
    pub fn public_base(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|url| url.trim_end_matches('/'))
    }

    /// The `trusted-proxies` networks wider than [`WIDEST_TRUSTED_V4`] / [`WIDEST_TRUSTED_V6`],
    /// as written.
    pub fn wide_trusted_proxies(&self) -> Vec<String> {
        self.trusted_proxies
            .iter()
            .filter(|net| match net {
                IpNet::V4(net) => net.prefix_len() < WIDEST_TRUSTED_V4,
                IpNet::V6(net) => net.prefix_len() < WIDEST_TRUSTED_V6,
            })
            .map(ToString::to_string)
            .collect()
    }
}
