//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` or the configured level.
//!
//! The daemon never prints; everything goes through `tracing`. Secrets are kept out at the
//! source: no span or event carries a password, key, `Authorization` header or query string.

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

pub use crate::config::LogFormat;

/// The filter of the installed subscriber, which a configuration reload (SIGHUP) replaces.
#[derive(Debug, Clone)]
pub struct LogFilter {
    /// Replaces the filter in place.
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` set the filter: it wins over the configured level, at start and on reloads.
    from_env: bool,
}

impl LogFilter {
    /// Checks `filter` (a `log-level` value) without applying it.
    pub fn parse(filter: &str) -> Result<EnvFilter, String> {
        EnvFilter::try_new(filter).map_err(|error| format!("invalid log-level {filter:?}: {error}"))
    }

    /// Whether `RUST_LOG` chose the filter (then `log-level` changes nothing).
    pub fn from_env(&self) -> bool {
        self.from_env
    }

    /// Filters with `filter` from now on.
    pub fn set(&self, filter: EnvFilter) -> Result<(), String> {
        self.handle
            .reload(filter)
            .map_err(|error| format!("cannot change the log filter: {error}"))
    }
}

/// Installs the global subscriber, writing `format`. `RUST_LOG`, when set and valid, wins over
/// `default_filter`. Returns the filter's handle for reloads.
pub fn init(default_filter: &str, format: LogFormat) -> LogFilter {
    let from_env = EnvFilter::try_from_default_env();
    let filter_from_env = from_env.is_ok();
    let filter = from_env
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => registry
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .init(),
        // One object per line: the event's fields (`message` among them) at the top level,
        // with `timestamp`, `level`, and the fields of the span it happened in under `span`
        // (an update's path, hostname and client).
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
    LogFilter {
        handle,
        from_env: filter_from_env,
    }
}

/// A client-supplied string made safe for a log line: control characters, quotes and
/// backslashes escaped (so no one can end a line and forge the next), everything beyond
/// `limit` characters cut and counted.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    /// The text as received.
    text: &'a str,
    /// The most characters shown.
    limit: usize,
}

impl<'a> Untrusted<'a> {
    /// `text`, shown up to 128 characters.
    pub fn new(text: &'a str) -> Self {
        Self { text, limit: 128 }
    }
}

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (shown, (index, character)) in self.text.char_indices().enumerate() {
            if shown == self.limit {
                return write!(f, "...(+{} bytes)", self.text.len() - index);
            }
            if character.is_control() || matches!(character, '"' | '\\') {
                write!(f, "{}", character.escape_default())?;
            } else {
                write!(f, "{character}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn untrusted_text_cannot_break_a_line_or_fill_the_log() {
        let forged = "x.zone\n2026-01-01T00:00:00Z  INFO forged line\r\u{1b}[31m";
        let shown = Untrusted::new(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(shown.starts_with("x.zone\\n2026"), "{shown}");
        let long = "a".repeat(10_000);
        assert_eq!(
            Untrusted::new(&long).to_string(),
            format!("{}...(+9872 bytes)", "a".repeat(128))
        );
        assert_eq!(Untrusted::new("héllo").to_string(), "héllo");
    }
}
