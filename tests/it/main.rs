//! The integration tests, one binary (it links once): each module holds the tests of one
//! part of the service, run against the real binary, a real pdns and real clients; `common`
//! starts and stops them. The load test (`tests/e2e_load.rs`) is a binary of its own: it must
//! not share the machine with the other tests while it measures.

mod acme;
mod acme_lego;
mod architecture;
mod audit;
mod backend;
mod backup;
mod cli;
mod clients;
mod common;
mod compat;
mod dashboard;
mod dashboard_browser;
mod dnssec;
mod docs;
mod dyndns;
mod e2e_cache;
mod e2e_pdns;
mod e2e_secondary;
mod faults;
mod hostile;
mod metrics;
mod outside_writers;
mod prefix;
mod reload;
mod rfc2136;
mod secondaries;
mod systemd;
mod transfer;
mod tsig;
