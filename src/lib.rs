//! certadns-ddns: a dynamic DNS update server on one SQLite store.
//!
//! Start reading at [`dyndns`]: the update endpoints routers call, and [`dyndns::update`],
//! where an update is authenticated and written with its audit row in one transaction.
//!
//! Module map, dependencies pointing one way (`model` ← `store` ← {`dyndns`, `backend`, `cli`} ←
//! `daemon` ← `main`; `auth` and `config` are leaves):
//!
//! * [`model`]: validated names, record types, plans, the strict IP rules and audit tags.
//! * [`auth`]: argon2id passwords, API keys (stored as SHA-256), the password-check cache.
//! * [`config`]: the TOML configuration and its defaults.
//! * [`store`]: the SQLite store, migrations and one file of SQL per table family; the served
//!   index, group commit and last-seen write-behind of `serve`.
//! * [`intel`]: what the audit trail records of an address: country (GeoIP database), AS
//!   number, the operator's tag lists; reloaded when the files are replaced.
//! * [`dyndns`]: the dyndns2 HTTP endpoints: request parsing, update logic, answer codes.
//! * [`backend`]: the PowerDNS remote backend (HTTP, unix socket, and TCP for relays) over the
//!   same store.
//! * [`net`]: the HTTP/1.1 accept loop with its limits and graceful drain.
//! * [`handover`]: restarts pdns never sees: listeners and backend connections kept in
//!   systemd's file-descriptor store and carried on by the next process.
//! * [`inflight`]: the answers pdns may not have taken in yet, which a purge waits for.
//! * [`purge`]: asking pdns front-ends (HTTP API) to drop cached answers for changed names.
//! * [`daemon`]: `serve`: binds, serves, reloads the config on SIGHUP, shuts down on
//!   SIGTERM/SIGINT.
//! * [`relay`]: `relay`: pdns's `pipe` connector on another host, carried to the backend over
//!   TCP.
//! * [`dashboard`]: the account holder's pages (sign-in, domains with the Update Help, history,
//!   API keys) on the update listener.
//! * [`update_help`]: the spec's Update Help of a domain as data (commands, endpoints, router
//!   settings), rendered by `update-help` and by the account holder's pages.
//! * [`cli`]: the admin commands (`zone`, `user`, `key`, `domain`, `history`, `serve`).
//! * [`log`]: tracing setup.
//! * [`metrics`]: the Prometheus metrics and health checks of `metrics-listen`.

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
pub mod routes;
pub mod served;
pub mod store;
pub mod update_help;
