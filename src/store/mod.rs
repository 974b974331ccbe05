//! The SQLite store: the one source of truth for zones, users, keys, domains and the audit trail.
//!
//! [`Store`] owns an r2d2 pool of connections, each set up with foreign keys on, a bounded busy
//! timeout and the configured `synchronous` level; the database runs in WAL mode so that reads
//! go on while one writer commits. Every write goes through [`Store::write`], one `BEGIN
//! IMMEDIATE` transaction: a change and its audit row commit together or not at all.
//!
//! The submodules hold the SQL, one file per table family, as functions over a `&Connection`
//! (a `Transaction` derefs to one), so they compose inside a single transaction and test on an
//! in-memory database. The store knows nothing of HTTP or of the dyndns2 protocol.
//!
//! What `serve` adds for speed (the served index, memos, group commit, write-behind) is not
//! here but in `crate::served`, over this store: this module holds no thread, lock or atomic
//! of its own (the thread that opens pooled connections is r2d2's; the store only keeps a
//! handle on it, for [`Store::close`]).

pub mod abuse;
pub mod audit;
pub mod backup;
pub mod challenges;
pub mod changes;
pub mod dnssec;
pub mod dnsupdate;
pub mod domains;
pub mod keys;
pub mod logins;
pub mod records;
mod schema;
pub mod sessions;
pub mod tsig;
pub mod updates;
pub mod users;
pub mod view;
pub mod zones;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::config::Synchronous;

pub use schema::migrate;

pub use crate::model::time::{timestamp, timestamp_at};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed (locked past the busy timeout, disk full, read-only file...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file does not exist, and this command does not create one.
    #[error(
        "no database at {}: `certadns-ddns init` (or `serve`) creates one; or point --db, \
         CERTADNS_DB or the config's [store] database at the existing file",
        .0.display()
    )]
    Missing(std::path::PathBuf),
    /// The database file could not be created.
    #[error("cannot create the database file: {0}")]
    Create(std::io::Error),
    /// The file is there but cannot be written: SQLite would open it read-only, or not at all
    /// in WAL mode, and every update would fail.
    #[error(
        "{path} cannot be written ({source}); the service needs to write the database file \
         and create `-wal` and `-shm` files beside it: make the file and its directory \
         writable by this user"
    )]
    NotWritable {
        /// The file or directory that is not writable.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an SQLite database, or is damaged; it is left as it is. (The caller
    /// names the file.)
    #[error("not a usable SQLite database ({detail}); the file was left as it is")]
    NotADatabase {
        /// What is wrong with it.
        detail: String,
    },
    /// No connection could be had from the pool in time.
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The database was written by a newer version of this program.
    #[error(
        "database schema version {found} is newer than this program knows ({known}); upgrade certadns-ddns"
    )]
    SchemaTooNew {
        /// `user_version` found in the file.
        found: i64,
        /// The highest migration this build has.
        known: i64,
    },
    /// A thing named by the caller does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change would break a uniqueness or ownership rule.
    #[error("{0}")]
    Conflict(String),
    /// The shared transaction of a group commit failed, so this write was not kept either.
    #[error("the write was not committed: {0}")]
    Commit(String),
    /// A blocking task died (panicked or was cancelled) before finishing.
    #[error("database task failed: {0}")]
    Task(String),
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock before failing with "database is locked".
    pub busy_timeout: Duration,
    /// Largest number of open connections.
    pub max_connections: u32,
    /// Run `PRAGMA quick_check` when opening (`serve` does, before it loads anything): a
    /// damaged file is refused at start rather than failing later, page by page.
    pub check_integrity: bool,
    /// Open every connection at start and keep them (`serve`). A short-lived process (the CLI)
    /// keeps none: the pool then never opens one in the background, which a process exiting
    /// at that moment would leave unclosed, its WAL not checkpointed into the file (a copy of
    /// the file alone would then miss the last changes).
    pub keep_idle: bool,
    /// Create the file from the schema when it is missing (`serve`, `init`). The other admin
    /// commands never do: a typo in `--db`, or a relative path met from another folder, must
    /// fail, not answer from a new, empty database.
    pub create_missing: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(3),
            max_connections: 8,
            check_integrity: false,
            keep_idle: false,
            create_missing: true,
        }
    }
}

/// What an in-memory lookup (that cannot fail) contributes to a store operation's errors.
impl From<std::convert::Infallible> for StoreError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<&crate::config::StoreConfig> for StoreOptions {
    /// `[store]`'s settings; the rest as by default.
    fn from(config: &crate::config::StoreConfig) -> Self {
        Self {
            synchronous: config.synchronous,
            busy_timeout: config.busy_timeout,
            ..Self::default()
        }
    }
}

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    /// Connections, each initialised by [`configure_connection`].
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The database file.
    path: PathBuf,
    /// How connections are set up.
    options: StoreOptions,
    /// The one thread on which the pool opens its connections (see [`Store::close`]).
    opener: Arc<ScheduledThreadPool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool)
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if missing) the database at `path`, switches it to WAL and applies any
    /// pending migrations.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        if options.create_missing {
            create_private_file(path)?;
        } else if !path.exists() {
            return Err(StoreError::Missing(
                std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            ));
        }
        check_file(path)?;
        let busy_timeout = options.busy_timeout;
        let synchronous = options.synchronous;
        // One connection first: its failure is SQLite's own, at once, where the pool would
        // only report that it timed out waiting for one.
        {
            let mut conn = Connection::open(path)?;
            // A file refused below is left as it is: no checkpoint of its -wal into it when
            // this connection closes.
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
            configure_connection(&mut conn, busy_timeout, synchronous).map_err(not_a_database)?;
            // WAL is a property of the file, so setting it once is enough.
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(not_a_database)?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(journal_mode = %mode, "could not switch the database to WAL");
            }
            if options.check_integrity {
                let verdict: String = conn
                    .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
                    .map_err(not_a_database)?;
                if verdict != "ok" {
                    return Err(StoreError::NotADatabase {
                        detail: format!(
                            "quick_check: {}",
                            verdict.split_whitespace().collect::<Vec<_>>().join(" ")
                        ),
                    });
                }
            }
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                false,
            )?;
            migrate(&mut conn)?;
        }
        let manager = SqliteConnectionManager::file(path)
            .with_init(move |conn| configure_connection(conn, busy_timeout, synchronous));
        // One thread: its jobs run one after the other, which `close` relies on.
        let opener = Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("sqlite-open")
                .build(),
        );
        let pool = r2d2::Pool::builder()
            .thread_pool(Arc::clone(&opener))
            .max_size(options.max_connections.max(1))
            // `serve` opens every connection at start and keeps them: no connection is ever
            // opened (or recycled) in the background while it runs, so SQLite touches the
            // `-shm` file only for requests. A connection opening while someone truncates that
            // file dies with SIGBUS (tests/it/hostile.rs provoked it one run in ten).
            .min_idle(Some(if options.keep_idle {
                options.max_connections.max(1)
            } else {
                0
            }))
            .idle_timeout(None)
            .max_lifetime(None)
            // A checkout test is a statement per call on the hot path; a broken SQLite
            // connection shows as an error on first use anyway.
            .test_on_check_out(false)
            // Waiting longer for a pooled connection than for a lock would only hide a stall.
            .connection_timeout(busy_timeout + Duration::from_secs(1))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            options: options.clone(),
            opener,
        })
    }

    /// Closes every connection of the pool before returning, when this is the last handle on
    /// it: the last connection to close checkpoints the WAL into the file and removes it, so a
    /// copy of the file alone holds every change. A short-lived process (the CLI) calls this
    /// before it exits.
    ///
    /// Dropping the handle is not enough: the thread that opened a connection may still hold
    /// the pool for a moment after handing the connection over, and the pool (with its
    /// connections) is then closed on that thread, which a process exiting meanwhile never
    /// lets finish. Waiting for a job queued behind it on that one thread closes that window.
    pub fn close(self) {
        let Self { pool, opener, .. } = self;
        drop(pool);
        let (done, finished) = std::sync::mpsc::channel();
        opener.execute(move || {
            let _ = done.send(());
        });
        let _ = finished.recv();
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection outside the pool, set up like the pooled ones (for a reader that keeps
    /// one of its own).
    pub fn connect(&self) -> Result<Connection, StoreError> {
        let mut conn = Connection::open(&self.path)?;
        configure_connection(
            &mut conn,
            self.options.busy_timeout,
            self.options.synchronous,
        )?;
        Ok(conn)
    }

    /// Runs `operation` on a pooled connection, outside any explicit transaction.
    ///
    /// Async code may call this directly for indexed point reads: in WAL mode a reader never
    /// waits for the writer, so a read takes microseconds, less than a hand-off to a blocking
    /// thread and back. The wait for a pooled connection is short (`POOL_WAIT`): a pool that
    /// stays exhausted longer is a stall, better answered as an error than waited out on an
    /// async worker.
    pub fn read<T>(
        &self,
        operation: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.pool.get_timeout(POOL_WAIT)?;
        operation(&conn)
    }

    /// Runs `operation` on a pooled connection it may open a transaction on (for a writer that
    /// manages its own).
    pub fn with_connection<T>(
        &self,
        operation: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        operation(&mut conn)
    }

    /// Runs `operation` inside one `BEGIN IMMEDIATE` transaction and commits it. When
    /// `operation` fails nothing it did remains.
    ///
    /// IMMEDIATE takes the write lock up front, so two writers never deadlock on a read-to-write
    /// upgrade; a writer that cannot get the lock within the busy timeout fails cleanly.
    pub fn write<T>(
        &self,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = operation(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Creates `path` empty with mode 0600 if it does not exist. The file holds password hashes;
/// SQLite would create it 0644, and gives its `-wal` and `-shm` files the mode of the database.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Create(error)),
    }
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses, before SQLite touches it, a file that is not an SQLite database (an empty file is
/// a new one) or that cannot be written, with the file or directory at fault named.
fn check_file(path: &Path) -> Result<(), StoreError> {
    use std::io::Read as _;
    let not_writable = |path: &Path, source| StoreError::NotWritable {
        path: path.to_path_buf(),
        source,
    };
    // Opening for writing changes nothing; it fails on a read-only file or file system, for
    // root too (EROFS).
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| not_writable(path, error))?;
    let mut header = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut header)
        .map_err(StoreError::Create)?;
    if !header.is_empty() && header.as_slice() != SQLITE_HEADER {
        return Err(StoreError::NotADatabase {
            detail: "no SQLite header".into(),
        });
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // The -wal and -shm files are created beside the database.
    for name in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(name);
        let companion = PathBuf::from(companion);
        match std::fs::OpenOptions::new().write(true).open(&companion) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // access(2) asks without creating anything; EROFS holds for root too.
                nix::unistd::access(directory, nix::unistd::AccessFlags::W_OK)
                    .map_err(|errno| not_writable(directory, errno.into()))?;
            }
            Err(error) => return Err(not_writable(&companion, error)),
        }
    }
    Ok(())
}

/// An SQLite error met while opening: "not a database" and corruption become
/// [`StoreError::NotADatabase`].
fn not_a_database(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::NotADatabase {
                detail: error.to_string(),
            }
        }
        _ => StoreError::Sqlite(error),
    }
}

/// The longest a read waits for a pooled connection (reads run inline on async workers).
const POOL_WAIT: Duration = Duration::from_millis(250);

/// Per-connection settings: these pragmas do not persist in the file.
fn configure_connection(
    conn: &mut Connection,
    busy_timeout: Duration,
    synchronous: Synchronous,
) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    // No memory-mapped I/O: a database file truncated under a mapping (a botched restore, a
    // full disk's cleanup) turns SQLite's next read into SIGBUS and ends the process, DNS
    // with it; with pread() it is an I/O error, answered `dnserr` or SERVFAIL. Lookups come
    // from the served index, and the update path's reads are memoised, so the page copies
    // this costs are off the hot paths (BENCHMARKS.md).
    conn.pragma_update(None, "mmap_size", 0)?;
    Ok(())
}

/// Turns a UNIQUE-constraint failure into [`StoreError::Conflict`] with `message`; passes other
/// errors through.
fn conflict_on_unique(error: rusqlite::Error, message: impl FnOnce() -> String) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict(message())
        }
        other => StoreError::Sqlite(other),
    }
}

/// An in-memory database with the schema applied, for the submodules' tests.
#[cfg(test)]
pub(crate) fn test_connection() -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    migrate(&mut conn).expect("migrations apply");
    conn
}

/// Zone `dyn.example` (name server `ns.example`, default timers) on `conn`, for the
/// submodules' tests; returns its id.
#[cfg(test)]
pub(crate) fn test_zone(conn: &Connection) -> i64 {
    let name = |text: &str| {
        text.parse::<crate::model::DomainName>()
            .expect("a valid name")
    };
    zones::insert_zone(
        conn,
        &name("dyn.example"),
        &[name("ns.example")],
        None,
        zones::SoaTimers::default(),
        "t",
    )
    .expect("the zone is added")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let now = timestamp();
        assert_eq!(now.len(), "2026-11-27T11:32:15.123Z".len());
        assert!(now.ends_with('Z'));
        assert!(
            time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339)
                .is_ok()
        );
    }

    #[test]
    fn open_creates_a_wal_database_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        let (mode, version, foreign_keys): (String, i64, i64) = store
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT (SELECT journal_mode FROM pragma_journal_mode),
                            (SELECT user_version FROM pragma_user_version),
                            (SELECT foreign_keys FROM pragma_foreign_keys)",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?)
            })
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(
            version,
            i64::try_from(schema::migrations().len()).unwrap(),
            "every migration of schema.sql"
        );
        assert_eq!(foreign_keys, 1);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database is private to its owner");
        drop(store);
        // Opening again leaves the schema as it is.
        Store::open(&path, &StoreOptions::default()).unwrap();
    }

    #[test]
    fn synchronous_follows_the_options() {
        let dir = tempfile::tempdir().unwrap();
        for (synchronous, level) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let options = StoreOptions {
                synchronous,
                ..StoreOptions::default()
            };
            let store = Store::open(&dir.path().join("t.db"), &options).unwrap();
            let found: i64 = store
                .read(|conn| Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?))
                .unwrap();
            assert_eq!(found, level, "{synchronous:?}");
        }
    }

    /// A user or a zone may hold a million domains: every statement that looks for a name
    /// must search the name's index, never read all of a user's or a zone's domains (one did:
    /// 200 ms with the write lock held, each `domain add` at a million names).
    #[test]
    fn statements_that_look_for_a_name_search_its_index() {
        let conn = test_connection();
        let owned = format!(
            "{} WHERE d.fqdn = ?1 AND +d.user_id = ?2",
            domains::DOMAIN_SELECT
        );
        let mut checked = 0;
        for sql in [
            records::TYPES_AT,
            owned.as_str(),
            abuse::RECORD_EPISODE,
            records::FITS_DYNAMIC,
        ] {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = std::iter::repeat_n(rusqlite::types::Null, statement.parameter_count());
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(nulls), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for line in plan.iter().filter(|line| line.contains("domains")) {
                assert!(line.contains("(fqdn=?"), "{sql}: {line}");
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        let result: Result<(), StoreError> = store.write(|tx| {
            tx.execute(
                "INSERT INTO users (username, email, password_hash, created_at, updated_at)
                 VALUES ('a', 'a@example.com', 'x', 'now', 'now')",
                [],
            )?;
            Err(StoreError::Conflict("forced".into()))
        });
        assert!(result.is_err());
        let count: i64 = store
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0))?))
            .unwrap();
        assert_eq!(count, 0);
    }
}
