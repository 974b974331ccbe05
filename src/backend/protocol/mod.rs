//! The PowerDNS remote-backend wire format (pdns 4.7): queries in, replies out.
//!
//! All three transports carry the same `{"method": ..., "parameters": {...}}` object (REST
//! mode rebuilds it from the path and headers, see `http.rs`). Numbers may arrive as JSON
//! numbers (JSON modes) or strings (REST), so integer parameters accept both. Replies always
//! carry `result`; `ttl` is always a JSON number, since pdns silently serves TTL 0 for a string.
//! Reference: `docs/backends/remote.rst` at auth-4.7.3 and `../shared/docs/pdns-remote-backend.md`.
//! Depends only on `model`, for the length rules of DNS names.

mod query;
mod reply;

pub use self::query::{
    DecodeError, KeyChange, METHOD_NAMES, QType, Query, check_dns_name, integer,
};
pub use self::reply::{DomainInfo, Key, Neighbours, Outcome, Record, Reply, TsigKey};
