//! The systemd side: `dist/certadns-ddns.service` checked by `systemd-analyze` (verify, and the
//! offline security score the README reports), and the daemon's sd_notify messages (READY,
//! the watchdog pings, RELOADING on SIGHUP, STOPPING) read from a notify socket of the test's
//! own.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::{BIN, TestEnv, require_tool};

/// The unit with ExecStart pointing at the binary under test, in `dir`.
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit =
        include_str!("../../dist/certadns-ddns.service").replace("/usr/bin/certadns-ddns", BIN);
    let path = dir.join("certadns-ddns.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_unit_verifies_and_exposes_little() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", unit.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let warnings = String::from_utf8_lossy(&verify.stderr);
    assert!(
        !warnings.contains("certadns-ddns.service"),
        "systemd-analyze verify complains:\n{warnings}"
    );
    let security = std::process::Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=true",
            "--no-pager",
            unit.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let score: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for certadns-ddns.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    // Restarts pdns never sees: the fds survive a restart, and so does the socket's directory.
    let text = std::fs::read_to_string(&unit).unwrap();
    let store_max: usize = text
        .lines()
        .find_map(|line| line.strip_prefix("FileDescriptorStoreMax="))
        .and_then(|max| max.trim().parse().ok())
        .expect("FileDescriptorStoreMax= in the unit");
    assert!(
        store_max >= 256,
        "room for every pdns connection: {store_max}"
    );
    assert!(
        text.lines()
            .any(|line| line == "RuntimeDirectoryPreserve=restart")
    );
    // pdns's own unit (Debian 12) scores 2.3; the README gives this unit's figure.
    assert!(score <= 1.5, "exposure {score}:\n{report}");
}

#[test]
fn systemd_hears_ready_the_watchdog_and_stopping() {
    let env = TestEnv::new();
    env.seed();
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut daemon = env.spawn_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("400000")),
        ],
    );
    // The fd store's messages (each listener's socket) are tests/restart's business.
    let receive = || loop {
        let mut buffer = [0u8; 512];
        let length = socket.recv(&mut buffer).expect("a notification");
        let message = String::from_utf8_lossy(&buffer[..length]).to_string();
        if !message.starts_with("FDSTORE") {
            return message;
        }
    };
    // READY comes once everything is listening (the harness saw the listening lines).
    assert_eq!(receive(), "READY=1\n");
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(receive(), "WATCHDOG=1\n");
    }
    // Pinged at half the period (the first at once): three pings take 2 × 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(daemon.log().contains("systemd watchdog on"));
    // `systemctl reload` (ExecReload= sends SIGHUP): RELOADING with the monotonic time, as
    // systemd asks, then READY once the configuration is applied.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let mut reload = Vec::new();
    while reload.last().is_none_or(|message| message != "READY=1\n") {
        let message = receive();
        if message != "WATCHDOG=1\n" {
            reload.push(message);
        }
    }
    assert_eq!(reload.len(), 2, "{reload:?}");
    let usec: u64 = reload[0]
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|usec| usec.parse().ok())
        .unwrap_or_else(|| panic!("{reload:?}"));
    assert!(usec > 0);
    assert_eq!(daemon.terminate(), Some(0));
    let mut rest = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buffer = [0u8; 512];
    while let Ok(length) = socket.recv(&mut buffer) {
        rest.push(String::from_utf8_lossy(&buffer[..length]).to_string());
    }
    assert!(
        rest.iter().any(|message| message == "STOPPING=1\n"),
        "{rest:?}"
    );
}

/// systemd reads its notify socket when it gets to it; meanwhile a notification blocks its
/// sender once the socket's queue is full (10 datagrams on this machine). The service sends one
/// per backend connection it stores, so those sends must never hold up the accept loops or the
/// update path: with systemd not reading at all, 40 new pdns connections come and updates are
/// still answered at once.
#[test]
fn a_busy_systemd_never_holds_up_requests() {
    use common::service_manager::ServiceManager;
    let env = TestEnv::new();
    let seed = env.seed();
    let socket = env.dir.path().join("backend.sock");
    env.write_config(&format!("listeners.backend-socket = {socket:?}\n"));
    let manager = ServiceManager::new(env.dir.path());
    let config = env.config_path();
    let daemon = common::Daemon::from_command(
        manager.command(BIN, &["serve", "--config", config.to_str().unwrap()]),
    );
    manager.wait_for("READY=1\n", Duration::from_secs(20));
    manager.pause(true);
    let mut held = (Vec::new(), Vec::new());
    for _ in 0..20 {
        held.0
            .push(std::os::unix::net::UnixStream::connect(&socket).unwrap());
        held.1
            .push(std::net::TcpStream::connect(daemon.backend_addr).unwrap());
    }
    for n in 1..=5 {
        let started = Instant::now();
        daemon
            .update_bearer(
                &seed.alice_key,
                &format!("hostname=home.dyn.example&myip=192.0.2.{n}"),
            )
            .assert(200, &format!("good 192.0.2.{n}"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "update {n} waited {:?} for systemd",
            started.elapsed()
        );
    }
    // systemd catches up: every connection is stored.
    manager.pause(false);
    manager.wait_stored(
        |names| {
            names
                .iter()
                .filter(|name| name.starts_with("conn-"))
                .count()
                == 40
        },
        Duration::from_secs(10),
    );
    drop(held);
}

/// A listener moved in the config between two runs (the README's "move a listener" step): the
/// next process binds the new address and socket path, closes the stored ones and takes them
/// out of the store, so the old address refuses instead of queueing connects no one accepts.
#[test]
fn a_moved_listener_is_bound_anew_and_the_stored_one_closed() {
    use common::service_manager::ServiceManager;
    let env = TestEnv::new();
    let seed = env.seed();
    let (old_port, new_port) = (common::free_port(), common::free_port());
    let (old_socket, new_socket) = (
        env.dir.path().join("old.sock"),
        env.dir.path().join("new.sock"),
    );
    let config = |port: u16, socket: &std::path::Path| {
        env.write_config(&format!(
            "listeners.listen = \"127.0.0.1:{port}\"\nlisteners.backend-socket = {socket:?}\n"
        ));
    };
    let manager = ServiceManager::new(env.dir.path());
    let start = || manager.serve(&env.config_path());
    config(old_port, &old_socket);
    let mut daemon = start();
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(200, "good 192.0.2.1");
    assert_eq!(daemon.terminate(), Some(0));
    config(new_port, &new_socket);
    daemon = start();
    assert_eq!(daemon.addr.port(), new_port);
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.2")
        .assert(200, "good 192.0.2.2");
    assert!(
        std::os::unix::net::UnixStream::connect(&new_socket).is_ok(),
        "the new socket serves"
    );
    manager.wait_stored(
        |names| {
            names
                .iter()
                .filter(|name| name.starts_with("listen-updates"))
                .count()
                == 1
                && names
                    .iter()
                    .filter(|name| name.starts_with("listen-backend-unix"))
                    .count()
                    == 1
        },
        Duration::from_secs(10),
    );
    // Nothing listens on the old address any more: refused, not left hanging in a backlog.
    let refused = std::net::TcpStream::connect(("127.0.0.1", old_port));
    assert!(refused.is_err(), "the old listener still accepts connects");
    assert!(
        std::os::unix::net::UnixStream::connect(&old_socket).is_err(),
        "the old socket still accepts connects"
    );
}
