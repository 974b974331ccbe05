//! The commit counter SQLite keeps in its WAL index: how the served index knows, with one
//! system call, whether anyone committed since it was last brought up to date.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The commit counter SQLite keeps in the WAL-index header, read from the `-shm` file with
/// `pread`. Not through a memory map: a mapped file truncated under us (by hand, or by a
/// tool) turns the next read into SIGBUS and ends the process; a `pread` of a short file just
/// comes back short. Any read that does not find a WAL-index header of the known version
/// counts as "not current": lookups read SQLite, and the index reloads once the header is back.
///
/// SQLite itself maps the `-shm` file, so a truncated one would crash it on its next access.
/// A short read therefore also puts the file back to its length (zeros: an invalid header,
/// from which SQLite rebuilds the WAL index itself). Every lookup and every write of `serve`
/// reads the counter before it uses SQLite, and the length is also checked once a second, so
/// the window in which SQLite could touch a truncated file is as short as it can be made from
/// outside SQLite.
#[derive(Debug)]
pub(super) struct ChangeCounter {
    /// Never closed: closing any descriptor of a file drops every POSIX lock this process holds
    /// on it, SQLite's included. Without SQLite's lock on the `-shm` file, the next process to
    /// open the database would re-initialise it under our connections (counter back to 0).
    file: std::mem::ManuallyDrop<std::fs::File>,
    /// Where the file is, to notice it being deleted or replaced.
    pub(super) path: PathBuf,
    /// The longest the file has been seen: what a truncated file is put back to.
    len: AtomicU64,
    /// When the path was last compared with the open file (seconds since `opened`).
    checked_at: AtomicU64,
    /// When the counter was opened.
    opened: Instant,
    /// The path no longer names the open file: the counter cannot be trusted again.
    replaced: AtomicBool,
}

impl ChangeCounter {
    /// The first bytes of the WAL-index header: version 3007000 (the only one SQLite has used).
    const VERSION: u32 = 3_007_000;
    /// Offset of `iChange` in the first copy of the header, which SQLite writes last.
    const CHANGE_OFFSET: usize = 8;
    /// How often (seconds) the path is compared with the open file.
    const CHECK_EVERY_SECS: u64 = 1;

    pub(super) fn open(database: &Path) -> std::io::Result<Self> {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let path = PathBuf::from(shm);
        // Read-write, to put back the length of a file truncated under SQLite.
        let file = std::mem::ManuallyDrop::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)?,
        );
        let len = file.metadata()?.len();
        let counter = Self {
            file,
            path,
            len: AtomicU64::new(len),
            checked_at: AtomicU64::new(0),
            opened: Instant::now(),
            replaced: AtomicBool::new(false),
        };
        if counter.get().is_none() {
            return Err(std::io::Error::other("the -shm file holds no WAL index"));
        }
        Ok(counter)
    }

    /// SQLite's commit count, or None when the file holds no readable WAL-index header (or is
    /// no longer the file SQLite uses).
    pub(super) fn get(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt as _;
        self.check_path();
        if self.replaced.load(Ordering::Relaxed) {
            return None;
        }
        let mut header = [0_u8; Self::CHANGE_OFFSET + 4];
        if self.file.read_exact_at(&mut header, 0).is_err() {
            self.restore_length();
            return None;
        }
        let word = |offset: usize| {
            u32::from_ne_bytes(header[offset..offset + 4].try_into().expect("four bytes"))
        };
        (word(0) == Self::VERSION).then(|| u64::from(word(Self::CHANGE_OFFSET)))
    }

    /// Whether the path no longer names the open file (checked now, at most once a second).
    pub(super) fn is_replaced(&self) -> bool {
        self.check_path();
        self.replaced.load(Ordering::Relaxed)
    }

    /// Puts a truncated file back to the longest length seen (see the type's docs).
    fn restore_length(&self) {
        let len = self.len.load(Ordering::Relaxed);
        match self.file.metadata() {
            Ok(metadata) if metadata.len() < len => {
                let restored = self.file.set_len(len);
                tracing::error!(
                    path = %self.path.display(),
                    from = metadata.len(),
                    to = len,
                    ok = restored.is_ok(),
                    "the -shm file was truncated while the service ran; its length is put back \
                     (SQLite rebuilds its contents) and lookups read SQLite until the index reloads"
                );
            }
            _ => {}
        }
    }

    /// At most once a second: whether the path still names the open file. A `-shm` file
    /// deleted or replaced under a running SQLite is a broken database set-up; the index then
    /// stops trusting the counter for good, and lookups read SQLite.
    pub(super) fn check_path(&self) {
        use std::os::unix::fs::MetadataExt as _;
        let now = self.opened.elapsed().as_secs();
        let last = self.checked_at.load(Ordering::Relaxed);
        if now < last + Self::CHECK_EVERY_SECS
            || self
                .checked_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let same = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(open), Ok(named)) => {
                if open.len() < self.len.load(Ordering::Relaxed) {
                    self.restore_length();
                } else {
                    self.len.fetch_max(open.len(), Ordering::Relaxed);
                }
                open.dev() == named.dev() && open.ino() == named.ino()
            }
            _ => false,
        };
        if !same && !self.replaced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %self.path.display(),
                "the -shm file was deleted or replaced while the service ran; the served index \
                 is off and lookups read SQLite until the restart `serve` now does"
            );
        }
    }
}
