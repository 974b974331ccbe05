//! certadns-ddns: a dynamic DNS update server on one SQLite store.
//!
//! The module map, by layer, top to bottom, as ARCHITECTURE.md draws it (read that first: it
//! follows an update and a pdns lookup through these) and `tests/it/architecture.rs` checks
//! it: a module imports only from the layers below its own, and no two files import each
//! other in a circle.
//!
//! 1. [`cli`]: the admin commands (`zone`, `user`, `key`, `record`, `domain`, `history`,
//!    `backup`, `serve`, `relay`...).
//! 2. [`daemon`]: `serve`: binds, serves, reloads the config on SIGHUP, shuts down on
//!    SIGTERM/SIGINT, one per database.
//! 3. [`routes`]: the update listener's route table: every path, its methods, its handler.
//! 4. The protocols, which never import each other:
//!    * [`dyndns`]: the dyndns2 update endpoints: request parsing, the update, answer codes;
//!    * [`acme`]: the ACME endpoints (lego's `httpreq`, acme-dns);
//!    * [`dashboard`]: the account holder's pages (sign-in, domains with the Update Help,
//!      history, API keys);
//!    * [`backend`]: the PowerDNS remote backend (HTTP, unix socket, TCP for relays);
//!    * [`relay`]: pdns's `pipe` connector on another host, carried to the backend over TCP.
//! 5. What the protocols share:
//!    * [`auth`]: authentication, every way in: credentials, password checks, the guessing
//!      throttle, API keys and scopes, sign-in ([`auth::Authenticator`]);
//!    * [`challenges`]: ACME challenge values, for the ACME endpoints and `txt=` alike.
//! 6. Services below them:
//!    * [`abuse`]: the update pace per user and host;
//!    * [`intel`]: what the audit trail records of an address (country, AS number, tags);
//!    * [`net`]: the HTTP/1.1 accept loop with its limits and graceful drain;
//!    * [`purge`]: asking pdns front-ends to drop cached answers for changed names;
//!    * [`http`]: the HTTP edge's parts: route table type, answers, bodies, client address.
//! 7. [`served`]: the store as `serve` uses it: typed verbs, the in-memory index, memos, the
//!    group commit and the write-behind.
//! 8. [`store`]: plain SQL per table family, the schema and migrations; [`log`]: tracing
//!    setup; [`inflight`]: answers pdns may not have taken in yet, which a purge waits for;
//!    [`update_help`]: the spec's Update Help of a domain as data.
//! 9. Leaves: [`model`] (validated names, types, plans, address and prefix rules, one name
//!    one owner), [`config`], [`metrics`], [`handover`] (restarts pdns never sees: sockets in
//!    systemd's fd store), [`bounded`] (the limiters' bounded map).

pub mod abuse;
pub mod acme;
pub mod auth;
pub mod backend;
pub mod bounded;
pub mod challenges;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod dyndns;
pub mod handover;
pub mod http;
pub mod inflight;
pub mod intel;
pub mod log;
pub mod metrics;
pub mod model;
pub mod net;
pub mod purge;
pub mod relay;
pub mod rfc2136;
pub mod routes;
pub mod served;
pub mod store;
pub mod update_help;
