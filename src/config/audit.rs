//! `[audit]`: the files the audit trail's country and tags come from. Live (and each file
//! is read again when replaced).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Section};
use serde::{Deserialize, Serialize};

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
    #[serde(rename = "reload-check-secs", with = "super::units::secs")]
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

impl Section for Audit {
    fn restart_needed(&self, _next: &Self) -> Vec<&'static str> {
        // Every key is live: named here, so that a new one is sorted on purpose.
        let Self {
            geoip_database: _,
            asn_database: _,
            ip_tags: _,
            reload_check: _,
        } = self;
        Vec::new()
    }

    fn reloaded(&self, next: &Self) -> Self {
        next.clone()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = self.ip_tags.keys().find(|name| !valid_tag_name(name)) {
            return Err(ConfigError::Invalid(format!(
                "[audit.ip-tags] {name:?}: a tag name is lower-case letters, digits, '-', '_' \
                 and '.', at most 63, starting with a letter or digit"
            )));
        }
        if self.reload_check.is_zero() {
            return Err(ConfigError::Invalid(
                "reload-check-secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
