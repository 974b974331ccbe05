//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` or the configured level.
//!
//! The daemon never prints; everything goes through `tracing`. Secrets are kept out at the
//! source: no span or event carries a password, key, `Authorization` header or query string.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

pub use crate::config::LogFormat;

/// Installs the global subscriber, writing `format`. `RUST_LOG`, when set, wins over
/// `default_filter`.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line: the event's fields (`message` among them) at the top level,
        // with `timestamp`, `level`, and the fields of the span it happened in under `span`
        // (an update's path, hostname and client).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
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
