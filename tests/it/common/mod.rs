//! Test harness: a throw-away database, the real binary, and a raw HTTP/1.1 client, one file
//! each (`env`, `daemon`, `http`, `dns`, `pdns`), all of it in scope here.
//!
//! [`TestEnv`] owns a temporary directory with the database and config. [`Daemon`] runs
//! `certadns-ddns serve` on a free loopback port (port 0), learns the port from its
//! `listening on http=` log line, and on drop stops it and, when the test failed, prints its
//! log. The HTTP client is hand-rolled on purpose: tests check the bytes on the wire
//! (`Content-Length`, no chunking) and send requests no well-behaved client library would.

#![allow(dead_code, unreachable_pub, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

mod daemon;
pub mod delay_proxy;
mod dns;
mod env;
mod http;
mod pdns;
pub mod service_manager;

pub use self::daemon::*;
pub use self::dns::*;
pub use self::env::*;
pub use self::http::*;
pub use self::pdns::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_certadns-ddns");

/// The password every seeded user has: with a colon and an ampersand, as real ones do.
pub const PASSWORD: &str = "s3cr:et&pass word";

/// Whether an external tool needed by end-to-end tests is on PATH. When it is missing the test
/// is skipped with a message, unless `REQUIRE_E2E=1` (CI sets it), which makes it a failure.
pub fn require_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    if !found {
        skip(&format!("{name} not found (.ci/run lists the packages)"));
    }
    found
}

/// The key's name and secret in the block `certadns-ddns tsig create` prints.
pub fn tsig_block_fields(block: &str) -> (String, String) {
    let field = |marker: &str| {
        block
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {marker} in {block}"))
            .to_string()
    };
    (field("key \""), field("secret \""))
}

/// Says why a test passes without running: a failure instead with `REQUIRE_E2E=1` (CI).
pub fn skip(why: &str) {
    assert!(
        std::env::var("REQUIRE_E2E").as_deref() != Ok("1"),
        "{why}, and REQUIRE_E2E=1"
    );
    println!("skipping: {why}");
}

/// A loopback port that is free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("local address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
