//! What a file that does not parse is told: where a key of an earlier version went, the
//! section a misplaced key belongs to, a section or key written twice, a top-level key below a
//! section. The message names the fix, not only the fault.

use super::ConfigError;

/// Keys of earlier versions, and what to use instead.
const REPLACED_KEYS: &[(&str, &str)] = &[(
    "abuse-min-interval-ms",
    "flagging now needs a sustained excess, set with abuse-burst, abuse-refill-ms and \
     abuse-flag-after-secs in [limits] (see examples/config.toml)",
)];

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

/// The [`ConfigError::Parse`] of `error` in `text`, with the hint that fits it.
pub(super) fn explain(error: &toml::de::Error, text: &str) -> ConfigError {
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
        message =
            format!("`{key}` belongs in the [{section}] section now (see examples/config.toml)");
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
}
