//! Keeping the audit data current: `geoipupdate` replaces its databases weekly, a cron job the
//! tag lists daily. Every `reload-check-secs` (and at once on SIGHUP, see `daemon::reload`)
//! each file's stamp is compared with the one of the content loaded; a changed file is read on
//! a blocking thread and swapped in whole, so lookups never wait and never see half a file. A
//! replacement that cannot be read is logged once and the data loaded before stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{FileStamp, IpIntel, Source, read};

/// One file watched.
#[derive(Debug)]
struct Watched {
    /// What its data is for.
    source: Source,
    /// Its name in messages (`geoip-database`...).
    what: String,
    /// Its path.
    path: PathBuf,
    /// The stamp of the content last read (loaded, or refused); None while the path cannot be
    /// examined (missing, say), which has been logged.
    stamp: Option<FileStamp>,
}

/// What one check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Files read again and swapped in.
    pub reloaded: usize,
    /// Files found changed (or gone) that could not be read: their data loaded before stays.
    pub failed: usize,
}

/// Reads the `[audit]` files again when they change. Made by [`IpIntel::load`].
#[derive(Debug)]
pub struct Reloader {
    /// The data it replaces.
    intel: IpIntel,
    /// The files.
    files: Vec<Watched>,
    /// How often to look.
    every: Duration,
}

impl Reloader {
    /// A reloader of `files` (source, name, path) whose content of `stamps` is loaded in
    /// `intel`.
    pub(super) fn new(
        intel: IpIntel,
        files: Vec<(Source, String, PathBuf)>,
        stamps: Vec<Option<FileStamp>>,
        every: Duration,
    ) -> Self {
        let files = files
            .into_iter()
            .zip(stamps)
            .map(|((source, what, path), stamp)| Watched {
                source,
                what,
                path,
                stamp,
            })
            .collect();
        Self {
            intel,
            files,
            every,
        }
    }

    /// Reads again each file whose stamp changed, or every file if `force`, and swaps in what
    /// it read (blocking: file reads). Logs each file reloaded, and each failure once per
    /// content.
    pub fn check(&mut self, force: bool) -> Checked {
        let mut checked = Checked::default();
        for file in &mut self.files {
            let current = match std::fs::metadata(&file.path) {
                Ok(metadata) => FileStamp::of(&metadata),
                Err(error) => {
                    if file.stamp.is_some() || force {
                        tracing::warn!(
                            file = %file.path.display(),
                            "cannot read {} {}: {error}; keeping the data loaded before",
                            file.what,
                            file.path.display()
                        );
                        checked.failed += 1;
                    }
                    file.stamp = None;
                    continue;
                }
            };
            if !force && file.stamp == Some(current) {
                continue;
            }
            match read(&file.source, &file.what, &file.path) {
                Ok((loaded, stamp)) => {
                    tracing::info!(
                        file = %file.path.display(),
                        "audit data reloaded: {}: {}",
                        file.what,
                        loaded.describe()
                    );
                    // This task is the only writer of the snapshot: load, change, store.
                    let next = self.intel.current.load().with(&file.source, loaded);
                    self.intel.current.store(Arc::new(next));
                    file.stamp = Some(stamp);
                    checked.reloaded += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, "audit data not reloaded; keeping the data loaded before");
                    file.stamp = Some(current);
                    checked.failed += 1;
                }
            }
        }
        checked
    }

    /// How often the files are to be checked (`reload-check-secs`).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Takes the files, data and check interval of `next` (loaded from a reloaded `[audit]`
    /// configuration) in place of its own: lookups see the new data from now on.
    pub fn adopt(&mut self, next: Self) {
        self.intel.current.store(next.intel.current.load_full());
        self.files = next.files;
        self.every = next.every;
    }
}

#[cfg(test)]
mod test {
    use std::net::IpAddr;

    use super::super::mmdb::test::{database, geolite_country};
    use super::super::test::config;
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Replaces `path` the way geoipupdate does: write a new file, rename it over the old.
    fn replace(path: &std::path::Path, bytes: &[u8]) {
        let next = path.with_extension("new");
        std::fs::write(&next, bytes).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    #[test]
    fn a_replaced_file_is_read_again_and_an_unchanged_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let audit = config(dir.path(), &[("tor-exit", "192.0.2.1\n")]);
        let (intel, mut reloader) = IpIntel::load(&audit).unwrap();
        assert_eq!(reloader.check(false), Checked::default());
        let before = intel.facts(ip("81.2.69.160"));
        assert_eq!(before.country.unwrap().as_str(), "GB");

        let country = audit.geoip_database.as_deref().unwrap();
        replace(
            country,
            &database(
                "GeoLite2-Country",
                &[("81.2.69.0/24", geolite_country("IE"))],
            ),
        );
        // The tag list rewritten in place, growing.
        std::fs::write(&audit.ip_tags["tor-exit"], "192.0.2.1\n81.2.69.160\n").unwrap();
        assert_eq!(
            reloader.check(false),
            Checked {
                reloaded: 2,
                failed: 0
            }
        );
        let after = intel.facts(ip("81.2.69.160"));
        assert_eq!(after.country.unwrap().as_str(), "IE");
        assert_eq!(after.tags, ["asn:20712", "tor-exit"]);
        assert_eq!(reloader.check(false), Checked::default());
        // SIGHUP reads everything again, changed or not.
        assert_eq!(reloader.check(true).reloaded, 3);
    }

    #[test]
    fn a_bad_replacement_keeps_the_data_and_is_tried_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let audit = config(dir.path(), &[("tor-exit", "81.2.69.160\n")]);
        let (intel, mut reloader) = IpIntel::load(&audit).unwrap();
        let before = intel.facts(ip("81.2.69.160"));
        let country = audit.geoip_database.as_deref().unwrap();
        let list = &audit.ip_tags["tor-exit"];

        // Half a download, and a list with a broken line.
        let whole = database(
            "GeoLite2-Country",
            &[("81.2.69.0/24", geolite_country("IE"))],
        );
        replace(country, &whole[..whole.len() / 2]);
        replace(list, b"81.2.69.160\n81.2.69.161/99\n");
        assert_eq!(reloader.check(false).failed, 2);
        assert_eq!(intel.facts(ip("81.2.69.160")), before);
        assert_eq!(
            reloader.check(false),
            Checked::default(),
            "not retried until changed"
        );

        // Gone: logged once, data kept; back: read.
        std::fs::remove_file(country).unwrap();
        assert_eq!(reloader.check(false).failed, 1);
        assert_eq!(reloader.check(false), Checked::default());
        assert_eq!(intel.facts(ip("81.2.69.160")), before);
        replace(country, &whole);
        replace(list, b"# emptied\n");
        assert_eq!(reloader.check(false).reloaded, 2);
        let after = intel.facts(ip("81.2.69.160"));
        assert_eq!(after.country.unwrap().as_str(), "IE");
        assert_eq!(after.tags, ["asn:20712"]);
    }

    #[test]
    fn lookups_go_on_while_files_are_swapped() {
        // Readers on other threads see the old or the new data, whole, and never wait for a
        // reload: they run to their count while reloads keep replacing the database.
        let dir = tempfile::tempdir().unwrap();
        let audit = config(dir.path(), &[]);
        let (intel, mut reloader) = IpIntel::load(&audit).unwrap();
        let country = audit.geoip_database.clone().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let intel = intel.clone();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut seen = std::collections::BTreeSet::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let facts = intel.facts(ip("81.2.69.160"));
                        seen.insert(facts.country.unwrap().to_string());
                        assert_eq!(facts.tags, ["asn:20712"]);
                    }
                    seen
                })
            })
            .collect();
        for round in 0..50 {
            let code = if round % 2 == 0 { "IE" } else { "GB" };
            replace(
                &country,
                &database(
                    "GeoLite2-Country",
                    &[("81.2.69.0/24", geolite_country(code))],
                ),
            );
            assert_eq!(reloader.check(true).reloaded, 2);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            let seen = reader.join().unwrap();
            assert!(
                seen.iter().all(|code| code == "GB" || code == "IE"),
                "{seen:?}"
            );
        }
    }
}
