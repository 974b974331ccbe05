//! A throw-away directory with a database and a config, and the CLI run against it.

use super::*;

/// A temporary directory holding a database.
pub struct TestEnv {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// The database file.
    pub db: PathBuf,
}

impl TestEnv {
    /// A new environment with an empty database (`certadns-ddns init`, as an operator's first
    /// step; the other admin commands never create one).
    pub fn new() -> Self {
        let env = Self::without_database();
        env.cli_ok(&["init"]);
        env
    }

    /// A new environment with no database file yet.
    pub fn without_database() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = dir.path().join("certadns.db");
        Self { dir, db }
    }

    /// The config file [`TestEnv::spawn`] writes for the daemon.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Runs the CLI with `--db` set (and, once the daemon's config exists, `--config`, so
    /// changes purge pdns's caches as an admin's would), and `stdin` as standard input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(BIN);
        if self.config_path().exists() {
            command.arg("--config").arg(self.config_path());
        }
        let mut child = command
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the CLI");
        let written = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes());
        // A CLI that refuses its arguments exits without reading its input: a broken pipe
        // here is that refusal, which the caller checks in the output.
        if let Err(error) = written {
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write stdin: {error}"
            );
        }
        child.wait_with_output().expect("CLI runs")
    }

    /// Runs the CLI with `--db` set and empty standard input.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, "")
    }

    /// Runs the CLI with `--db` only (no config: no pdns purges), and returns its stdout.
    pub fn cli_ok_without_config(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("CLI runs");
        output_ok(args, output)
    }

    /// Runs the CLI and returns its stdout; panics with its stderr if it failed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        output_ok(args, self.cli(args))
    }

    /// Like [`TestEnv::cli_ok`] with standard input.
    pub fn cli_ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        output_ok(args, self.cli_with_stdin(args, stdin))
    }

    /// Adds a user with the shared test [`PASSWORD`] on `plan`.
    pub fn add_user(&self, name: &str, email: &str, plan: &str) {
        self.add_user_with_password(name, email, plan, PASSWORD);
    }

    /// Adds a user with `password` on `plan`.
    pub fn add_user_with_password(&self, name: &str, email: &str, plan: &str, password: &str) {
        self.cli_ok_with_stdin(
            &[
                "user",
                "add",
                name,
                "--email",
                email,
                "--plan",
                plan,
                "--password-stdin",
            ],
            password,
        );
    }

    /// Adds a DDNS domain of `owner`, of `record_type`, with a first address if given.
    pub fn add_domain(&self, fqdn: &str, owner: &str, record_type: &str, ip: Option<&str>) {
        let mut args = vec![
            "domain",
            "add",
            fqdn,
            "--owner",
            owner,
            "--type",
            record_type,
        ];
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        self.cli_ok(&args);
    }

    /// Seeds the common fixture:
    /// * zone `dyn.example` served by `ns1.dyn.example`;
    /// * `alice` (plus plan) owning `home.dyn.example` A and `v6.dyn.example` AAAA;
    /// * `bob` (free plan) owning `bob.dyn.example` A;
    /// * an API key of alice with scope `domains:update`.
    pub fn seed(&self) -> Seed {
        // A database moved or removed since `new` is made again (init changes nothing else).
        self.cli_ok(&["init"]);
        self.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
        self.add_user("alice", "Alice@Example.com", "plus");
        self.add_user("bob", "bob@example.com", "free");
        self.add_domain("home.dyn.example", "alice", "A", None);
        self.add_domain("v6.dyn.example", "alice", "AAAA", None);
        self.add_domain("bob.dyn.example", "bob", "A", None);
        let alice_key = self.cli_ok(&["key", "create", "alice"]).trim().to_string();
        Seed { alice_key }
    }

    /// Starts the daemon with this database, on a free loopback port, with `extra_config`
    /// appended to its config file.
    ///
    /// Tests update the same host many times a second on purpose, so the abuse guards are off
    /// unless `extra_config` sets their keys.
    pub fn spawn(&self, extra_config: &str) -> Daemon {
        self.spawn_with_env(extra_config, &[])
    }

    /// [`TestEnv::spawn`] with extra environment variables for the daemon.
    pub fn spawn_with_env(&self, extra_config: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        self.write_config(extra_config);
        let config = self.config_path();
        Daemon::spawn_with_env(
            &["serve", "--config", config.to_str().expect("UTF-8 path")],
            envs,
        )
    }

    /// Writes the config file [`TestEnv::spawn`] runs the daemon with: loopback listeners on
    /// free ports, debug logs, the guards off, then `extra_config` (whose keys win). Written
    /// again while the daemon runs, it is what SIGHUP reads.
    pub fn write_config(&self, extra_config: &str) {
        let config = self.config_path();
        let mut text = String::new();
        let database = format!("{:?}", self.db);
        for (key, value) in [
            ("store.database", database.as_str()),
            ("listeners.listen", "\"127.0.0.1:0\""),
            ("listeners.backend-listen", "\"127.0.0.1:0\""),
            ("log-level", "\"debug\""),
            ("limits.abuse-detection", "false"),
            ("limits.auth-failure-limit", "0"),
        ] {
            let overridden = extra_config
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{key} ")));
            if !overridden {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        // Last, as it may end with tables ([[pdns.api]]) that top-level keys cannot follow.
        text.push_str(extra_config);
        text.push('\n');
        // Whole or not at all, as an operator's editor or config management writes it.
        let next = config.with_extension("toml.new");
        std::fs::write(&next, text).expect("write config");
        std::fs::rename(&next, &config).expect("put the config in place");
    }

    /// A read-only connection to the database, for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the database");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// The current address of the `record_type` domain `fqdn`.
    pub fn stored_ip(&self, fqdn: &str, record_type: &str) -> Option<String> {
        self.db()
            .query_row(
                "SELECT ip FROM domains WHERE fqdn = ?1 AND record_type = ?2",
                [fqdn, record_type],
                |row| row.get(0),
            )
            .expect("domain exists")
    }

    /// How many audit rows there are.
    pub fn audit_count(&self) -> i64 {
        self.db()
            .query_row("SELECT count(*) FROM domain_updates", [], |row| row.get(0))
            .expect("count")
    }
}

/// What [`TestEnv::seed`] made that tests need.
pub struct Seed {
    /// alice's API key.
    pub alice_key: String,
}

/// Stdout of a successful command; panics with the command's stderr otherwise.
fn output_ok(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "`certadns-ddns {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
