//! One `serve` per database: an advisory lock on `<database>.lock`, held for the life of the
//! process. A second `serve` on the same file (other ports, so nothing else stops it) would
//! answer pdns from its own index, purge caches twice and hold the fd store's sockets apart;
//! it is refused at start, naming the database and the process that serves it. The admin CLI
//! takes no lock: it works beside the running service, and asks [`serving_process`] when it
//! needs to know whether one runs (`user unlock`).
//!
//! `flock(2)` ends with the process, however it ends, so a crash leaves no stale lock; the
//! file stays (with the last holder's pid) and is reused.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock, held until dropped (at exit).
#[derive(Debug)]
pub(super) struct ServeLock {
    /// The locked file, with this process's pid in it.
    _file: Flock<File>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum LockError {
    /// Another process holds it.
    #[error(
        "{database} is served already, by process {holder} (lock {lock}): stop that one first \
         (systemctl stop certadns-ddns), or give this one another [store] database"
    )]
    Held {
        /// The database.
        database: String,
        /// The lock file.
        lock: String,
        /// The holder's pid, as it wrote it (or "unknown").
        holder: String,
    },
    /// The lock file could not be made or locked (a directory this user cannot write, say):
    /// opening the database says what is wrong more precisely.
    #[error("cannot lock {lock}: {source}")]
    Io {
        /// The lock file.
        lock: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The pid of the `serve` that holds `database`'s lock, as it wrote it ("unknown" if it did
/// not); None when no process serves it (or the lock file cannot be read: a CLI without the
/// rights to read it could not have seen a service's state either).
pub fn serving_process(database: &Path) -> Option<String> {
    let mut file = std::fs::File::open(lock_path(database)).ok()?;
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked_at_drop) => None,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Some(match holder.trim() {
            "" => "unknown".to_string(),
            pid => pid.to_string(),
        }),
        Err(_) => None,
    }
}

/// The lock file of `database`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl ServeLock {
    /// Takes the lock of `database`, or says who holds it.
    pub(super) fn take(database: &Path) -> Result<Self, LockError> {
        let lock = lock_path(database);
        let io = |source| LockError::Io {
            lock: lock.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    database: database.display().to_string(),
                    lock: lock.display().to_string(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}
