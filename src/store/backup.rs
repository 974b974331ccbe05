//! A consistent copy of the database while the service runs: `VACUUM INTO`.
//!
//! `VACUUM INTO` reads the database in one read transaction and writes a compacted copy of
//! that snapshot. In WAL mode a reader never blocks the writer, so updates go on while it
//! runs; only checkpoints wait until it ends (the WAL grows meanwhile). SQLite's online backup
//! API was the other candidate. It copies page runs between short locks, but it starts again
//! whenever another connection writes, so under steady updates a large store might never
//! finish.
//!
//! The copy is written beside the target under a temporary name with mode 0600 (it holds
//! password hashes), checked with `quick_check`, synced, and only then renamed into place. An
//! interrupted backup never leaves a half-written file under the target's name.
//!
//! A restore is staged: the copy is put beside the database as `<database>.restore`, and the
//! next start of `serve` ([`apply_staged_restore`]) checks it and moves it into place before it
//! opens anything. So a restore is a `systemctl restart`, which keeps pdns's connections
//! (`handover.rs`), instead of a stop and a start, which would close them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target exists: a backup never overwrites a file.
    #[error("{0} exists already; remove it or choose another path")]
    Exists(PathBuf),
    /// There is no database to copy.
    #[error("no database at {0}")]
    Missing(PathBuf),
    /// A file could not be created, synced or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed to read the database or write the copy.
    #[error("copying failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The copy did not pass `quick_check` (it was removed).
    #[error("the copy failed its check ({0}); it was removed")]
    Damaged(String),
}

/// Why a staged restore was not applied (the database stays as it was).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The staged copy is not a database this service can use.
    #[error(
        "the staged restore {path} is not a usable database ({why}); nothing was restored, the \
         database stays as it was, and the copy was renamed to .restore.refused: stage a good \
         copy and restart again"
    )]
    Unusable {
        /// The staged file.
        path: PathBuf,
        /// What the check found.
        why: String,
    },
    /// A file could not be removed, renamed or synced.
    #[error("restoring from {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a restore of `database` is staged: `<database>.restore`.
pub fn staged_restore_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".restore");
    PathBuf::from(name)
}

/// Moves a staged restore (`<database>.restore`) into place, if there is one: checks it
/// (`quick_check`, and the tables of a certadns-ddns store), removes the database's `-wal` and
/// `-shm` (they belong to the database replaced; left, SQLite would replay the old WAL into
/// the restored file), then renames it over the database and syncs the directory. Returns
/// whether a restore was applied. Interrupted, it is applied again at the next start. A copy
/// that fails the check is renamed to `<database>.restore.refused` (and the error says so), so
/// that the caller can go on with the database as it was.
pub fn apply_staged_restore(database: &Path) -> Result<bool, RestoreError> {
    let staged = staged_restore_path(database);
    if !staged.exists() {
        return Ok(false);
    }
    let checked = check_staged(&staged);
    if let Err(error) = checked {
        // Put aside, so that the next start does not try it again.
        let mut refused = staged.clone().into_os_string();
        refused.push(".refused");
        let _ = std::fs::rename(&staged, refused);
        return Err(error);
    }
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    for suffix in ["-wal", "-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&side)(error)),
        }
    }
    std::fs::rename(&staged, database).map_err(io_error(database))?;
    if let Some(directory) = database.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(directory))?;
    }
    Ok(true)
}

/// Whether the staged copy at `staged` is a database this service can use: `quick_check`, and
/// the tables of a certadns-ddns store. Read as an immutable file: nothing is written beside it.
fn check_staged(staged: &Path) -> Result<(), RestoreError> {
    let unusable = |why: String| RestoreError::Unusable {
        path: staged.to_path_buf(),
        why,
    };
    let uri = format!(
        "file:{}?mode=ro&immutable=1",
        staged
            .to_str()
            .ok_or_else(|| unusable("not a UTF-8 path".into()))?
    );
    let copy = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|error| unusable(error.to_string()))?;
    let check: String = copy
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(|error| unusable(error.to_string()))?;
    if check != "ok" {
        return Err(unusable(format!("quick_check: {check}")));
    }
    let tables: i64 = copy
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('zones', 'domains', 'users')",
            [],
            |row| row.get(0),
        )
        .map_err(|error| unusable(error.to_string()))?;
    if tables != 3 {
        return Err(unusable("not a certadns-ddns store".into()));
    }
    Ok(())
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Size of the copy, in bytes.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Writes a consistent copy of the database at `source` to `target` (which must not exist),
/// waiting at most `busy_timeout` for a lock (only a schema change takes one a reader waits
/// for).
pub fn backup(
    source: &Path,
    target: &Path,
    busy_timeout: Duration,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    if target.exists() {
        return Err(BackupError::Exists(target.to_path_buf()));
    }
    if !source.is_file() {
        return Err(BackupError::Missing(source.to_path_buf()));
    }
    // Never created here, never migrated: the copy is of what the file holds.
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let partial = partial_path(target);
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    create_private(&partial).map_err(io_error(&partial))?;
    let written = write_copy(&conn, &partial);
    drop(conn);
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, target).map_err(io_error(target))?;
    if let Some(directory) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename itself survives a power cut only once the directory is synced.
        std::fs::File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(directory))?;
    }
    let bytes = std::fs::metadata(target).map_err(io_error(target))?.len();
    Ok(BackupReport {
        bytes,
        elapsed: started.elapsed(),
    })
}

/// `VACUUM INTO` the empty file `partial`, then checks and syncs the copy.
fn write_copy(conn: &Connection, partial: &Path) -> Result<(), BackupError> {
    let name = partial.to_str().ok_or_else(|| BackupError::Io {
        path: partial.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 path"),
    })?;
    conn.execute("VACUUM INTO ?1", [name])?;
    let copy = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = copy.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    drop(copy);
    if check != "ok" {
        return Err(BackupError::Damaged(check));
    }
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(|source| BackupError::Io {
            path: partial.to_path_buf(),
            source,
        })
}

/// The temporary name of a copy under way: hidden, beside the target, naming this process.
fn partial_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "backup".into(), |name| name.to_string_lossy());
    target.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Creates `path` empty with mode 0600; fails if it exists.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::{Store, StoreOptions};

    #[test]
    fn a_staged_restore_replaces_the_database_once_and_a_bad_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let add = |store: &Store, name: &str| {
            store
                .write(|tx| {
                    crate::store::users::insert_user(
                        tx,
                        name,
                        &format!("{name}@example.com"),
                        "$phc",
                        crate::model::Plan::Plus,
                        "t",
                    )
                })
                .unwrap();
        };
        let users = |path: &Path| -> Vec<String> {
            let conn = Connection::open(path).unwrap();
            let mut statement = conn
                .prepare("SELECT username FROM users ORDER BY 1")
                .unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let store = Store::open(&live, &StoreOptions::default()).unwrap();
        add(&store, "alice");
        let copy = dir.path().join("copy.db");
        backup(&live, &copy, Duration::from_secs(1)).unwrap();
        add(&store, "bob");
        store.close();
        assert!(!apply_staged_restore(&live).unwrap(), "nothing staged");

        // A damaged copy: refused, and the database is as it was.
        let staged = staged_restore_path(&live);
        std::fs::write(&staged, b"SQLite format 3\0 but not really").unwrap();
        let refused = apply_staged_restore(&live).unwrap_err().to_string();
        assert!(refused.contains("live.db.restore"), "{refused}");
        assert!(refused.contains("nothing was restored"), "{refused}");
        assert_eq!(users(&live), ["alice", "bob"]);
        assert!(!staged.exists(), "put aside");
        assert!(dir.path().join("live.db.restore.refused").exists());

        // A good one: in place, its -wal and -shm gone with the old database, and only once.
        std::fs::copy(&copy, &staged).unwrap();
        std::fs::write(dir.path().join("live.db-wal"), b"an old WAL").unwrap();
        assert!(apply_staged_restore(&live).unwrap());
        assert!(!staged.exists());
        assert!(!dir.path().join("live.db-wal").exists());
        assert_eq!(users(&live), ["alice"]);
        assert!(!apply_staged_restore(&live).unwrap());
    }

    #[test]
    fn a_copy_holds_the_data_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("live.db");
        let store = Store::open(&source, &StoreOptions::default()).unwrap();
        store
            .write(|tx| {
                crate::store::users::insert_user(
                    tx,
                    "alice",
                    "a@example.com",
                    "$phc",
                    crate::model::Plan::Plus,
                    "t",
                )
            })
            .unwrap();
        let target = dir.path().join("copy.db");
        let report = backup(&source, &target, Duration::from_secs(1)).unwrap();
        assert_eq!(report.bytes, std::fs::metadata(&target).unwrap().len());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let copy = Connection::open(&target).unwrap();
        let name: String = copy
            .query_row("SELECT username FROM users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(name, "alice");
        assert!(matches!(
            backup(&source, &target, Duration::from_secs(1)),
            Err(BackupError::Exists(_))
        ));
        assert!(matches!(
            backup(
                &dir.path().join("none.db"),
                &dir.path().join("x.db"),
                Duration::from_secs(1)
            ),
            Err(BackupError::Missing(_))
        ));
        assert!(!dir.path().join("none.db").exists(), "nothing created");
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains(".partial-"))
            .count();
        assert_eq!(leftovers, 0);
        store.close();
    }
}
