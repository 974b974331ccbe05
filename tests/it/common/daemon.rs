//! `certadns-ddns serve` under test: started on free loopback ports, stopped (and its log
//! printed when the test failed) on drop.

use super::*;

/// A running `certadns-ddns serve`.
pub struct Daemon {
    /// The process.
    child: Child,
    /// Address of the update endpoints.
    pub addr: SocketAddr,
    /// Address of the PowerDNS backend's HTTP connector.
    pub backend_addr: SocketAddr,
    /// Everything the daemon logged so far.
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts the binary with `args` and waits for its `listening on http=` and
    /// `listening on backend=` lines.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables (a fault-injection shim's).
    pub fn spawn_with_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args).envs(envs.iter().copied());
        Self::from_command(command)
    }

    /// Starts `command` (the binary, or a wrapper that execs it) as [`Daemon::spawn`] does.
    pub fn from_command(mut command: Command) -> Self {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addr) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                for marker in ["listening on http=", "listening on backend=http://"] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        // Text lines end the address with a space, JSON ones with a quote.
                        let addr = rest
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or_default();
                        let _ = found.send(addr.trim_end_matches("/dns").to_string());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut addresses = Vec::new();
        while addresses.len() < 2 {
            match addr.recv_timeout(Duration::from_secs(20)) {
                Ok(addr) => addresses.push(
                    addr.parse::<SocketAddr>()
                        .expect("a socket address in the log"),
                ),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("daemon did not start:\n{}", log.lock().unwrap());
                }
            }
        }
        Self {
            child,
            addr: addresses[0],
            backend_addr: addresses[1],
            log,
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many times the log contains `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits (bounded) until the log contains `needle` more than `seen` times.
    pub fn wait_for_log_after(&self, needle: &str, seen: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_count(needle) <= seen {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?} again (seen {seen} times)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("send the signal");
    }

    /// The address the daemon logged after `marker` (e.g. `listening on backend=tcp://`),
    /// waiting (bounded) for the line.
    pub fn logged_address(&self, marker: &str) -> SocketAddr {
        self.wait_for_log(marker);
        let log = self.log();
        let rest = log.split(marker).nth(1).expect("the marker is logged");
        rest.split_whitespace()
            .next()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no address after {marker:?} in:\n{log}"))
    }

    /// The metrics listener (`metrics-listen`), once logged.
    pub fn metrics_addr(&self) -> SocketAddr {
        let marker = "listening on metrics=http://";
        self.wait_for_log(marker);
        let log = self.log();
        let rest = log.split(marker).nth(1).expect("the marker is logged");
        rest.split('/')
            .next()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no metrics address in:\n{log}"))
    }

    /// The line-JSON TCP listener for relays (`backend-tcp-listen`), once logged.
    pub fn tcp_backend_addr(&self) -> SocketAddr {
        self.logged_address("listening on backend=tcp://")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Waits (bounded) for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `target` (path and query) with extra `headers`.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", target, headers, None)
    }

    /// POST a form `body` to `target`.
    pub fn post_form(&self, target: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        self.request("POST", target, headers, Some(body))
    }

    /// Sends one HTTP/1.1 request with `Connection: close` and reads the answer.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let mut raw = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            raw.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            raw.push_str("\r\n");
        }
        send_raw(self.addr, raw.as_bytes())
    }

    /// `GET /nic/update?{query}` with `Authorization: Bearer {key}`.
    pub fn update_bearer(&self, key: &str, query: &str) -> HttpResponse {
        self.get(
            &format!("/nic/update?{query}"),
            &[("Authorization", &format!("Bearer {key}"))],
        )
    }

    /// `GET /nic/update?{query}` with Basic credentials.
    pub fn update_basic(&self, login: &str, password: &str, query: &str) -> HttpResponse {
        self.get(
            &format!("/nic/update?{query}"),
            &[("Authorization", &basic(login, password))],
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            println!("---- daemon log ----\n{}", self.log());
        }
    }
}
