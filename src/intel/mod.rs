//! IP intelligence for the audit trail: what is known of an address besides itself. Its
//! country comes from a MaxMind-format GeoIP database, its AS number from an ASN database, and
//! its tags from the special-purpose ranges and the operator's lists of CIDRs (`[audit]`).
//!
//! Lookups happen in the request's task before a change goes to the writer ([`IpIntel::facts`]):
//! never inside the write transaction, and never for an answer that changes nothing. The data
//! sits behind an [`ArcSwap`]: a lookup takes the current snapshot without a lock, and the
//! [`Reloader`] swaps in files replaced under the running service, read on a blocking thread.

mod cidr;
mod mmdb;
mod reload;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use self::cidr::{BadLine, CidrList};
use self::mmdb::Mmdb;
pub use self::reload::{Checked, Reloader};
use crate::config;
use crate::model::{IpFacts, is_special_tag};

/// Why the audit data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (`geoip-database`, ...).
        what: String,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A database file is not in MaxMind's format (or damaged).
    #[error("{what} {path} is not a MaxMind-format (.mmdb) database: {message}")]
    Database {
        /// Which file.
        what: String,
        /// Its path.
        path: PathBuf,
        /// What `maxminddb` said.
        message: String,
    },
    /// A line of a tag list is not an address or CIDR.
    #[error("{what} {path}, line {line}: {text:?} is not an IP address or CIDR")]
    Line {
        /// Which list.
        what: String,
        /// Its path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A tag list is named like a special-purpose range tag.
    #[error(
        "[audit.ip-tags] {0:?} is the tag of a special-purpose range already; name the list \
         differently"
    )]
    ReservedName(String),
}

/// One file of `[audit]`, and what its data is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `geoip-database`.
    Country,
    /// `asn-database`.
    Asn,
    /// The list at this index of [`Sources::lists`].
    Tags(usize),
}

/// The data of every `[audit]` file, as loaded at one time.
#[derive(Clone, Default)]
struct Sources {
    /// `geoip-database`.
    country: Option<Arc<Mmdb>>,
    /// `asn-database`.
    asn: Option<Arc<Mmdb>>,
    /// `[audit.ip-tags]`: name and list, in name order.
    lists: Vec<(String, Arc<CidrList>)>,
}

/// What one file held when it was read.
enum Loaded {
    /// A database.
    Database(Arc<Mmdb>),
    /// A tag list.
    List(Arc<CidrList>),
}

impl Loaded {
    /// What it is, for the log.
    fn describe(&self) -> String {
        match self {
            Self::Database(database) => database.describe(),
            Self::List(list) => format!("{} entries", list.entries()),
        }
    }
}

impl Sources {
    /// These sources with `source` holding `loaded`.
    fn with(&self, source: &Source, loaded: Loaded) -> Self {
        let mut next = self.clone();
        match (source, loaded) {
            (Source::Country, Loaded::Database(database)) => next.country = Some(database),
            (Source::Asn, Loaded::Database(database)) => next.asn = Some(database),
            (Source::Tags(index), Loaded::List(list)) => next.lists[*index].1 = list,
            _ => unreachable!("a source is read as its own kind"),
        }
        next
    }
}

/// The audit data, shared by every task that writes changes. Cheap to clone.
#[derive(Clone)]
pub struct IpIntel {
    /// The current snapshot, replaced whole by the [`Reloader`].
    current: Arc<ArcSwap<Sources>>,
}

impl std::fmt::Debug for IpIntel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources = self.current.load();
        f.debug_struct("IpIntel")
            .field("country", &sources.country.is_some())
            .field("asn", &sources.asn.is_some())
            .field("lists", &sources.lists.len())
            .finish()
    }
}

impl IpIntel {
    /// No databases and no lists: the special-purpose range tags alone.
    pub fn none() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Sources::default())),
        }
    }

    /// Reads every file `config` names (blocking: call it at start or on a blocking thread),
    /// logging what each holds. A file that cannot be read or parsed fails the whole load,
    /// naming the file. Returns the data with the [`Reloader`] that keeps it current.
    pub fn load(config: &config::Audit) -> Result<(Self, Reloader), IntelError> {
        if let Some(name) = config.ip_tags.keys().find(|name| is_special_tag(name)) {
            return Err(IntelError::ReservedName(name.clone()));
        }
        let mut files: Vec<(Source, String, PathBuf)> = Vec::new();
        match &config.geoip_database {
            Some(path) => files.push((Source::Country, "geoip-database".into(), path.clone())),
            None => {
                tracing::info!("no geoip-database configured ([audit]): audit rows get no country")
            }
        }
        if let Some(path) = &config.asn_database {
            files.push((Source::Asn, "asn-database".into(), path.clone()));
        }
        for (index, (name, path)) in config.ip_tags.iter().enumerate() {
            files.push((
                Source::Tags(index),
                format!("[audit.ip-tags] list {name:?}"),
                path.clone(),
            ));
        }
        let mut sources = Sources {
            lists: config
                .ip_tags
                .keys()
                .map(|name| (name.clone(), Arc::default()))
                .collect(),
            ..Sources::default()
        };
        let mut stamps = Vec::with_capacity(files.len());
        for (source, what, path) in &files {
            let (loaded, stamp) = read(source, what, path)?;
            tracing::info!(file = %path.display(), "audit data loaded: {what}: {}", loaded.describe());
            sources = sources.with(source, loaded);
            stamps.push(Some(stamp));
        }
        let intel = Self {
            current: Arc::new(ArcSwap::from_pointee(sources)),
        };
        let reloader = Reloader::new(intel.clone(), files, stamps, config.reload_check);
        Ok((intel, reloader))
    }

    /// What is known of `ip`: its special-purpose range tags; then, for an address outside
    /// those ranges, its country and `asn:NUMBER`; then the names of the lists holding it.
    /// Never fails: what a database cannot say is left out.
    pub fn facts(&self, ip: IpAddr) -> IpFacts {
        let ip = ip.to_canonical();
        let mut facts = IpFacts::special(ip);
        let sources = self.current.load();
        if facts.tags.is_empty() {
            facts.country = sources.country.as_ref().and_then(|db| db.country(ip));
            if let Some(asn) = sources.asn.as_ref().and_then(|db| db.asn(ip)) {
                facts.tags.push(format!("asn:{asn}"));
            }
        }
        for (name, list) in &sources.lists {
            if list.contains(ip) {
                facts.tags.push(name.clone());
            }
        }
        facts
    }
}

/// The identity of a file's content as the file system tells it: a replacement by rename (as
/// geoipupdate does) changes the inode, a rewrite in place the size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    /// Device and inode.
    inode: (u64, u64),
    /// Size in bytes.
    size: u64,
    /// Modification time, in nanoseconds since the epoch.
    modified: i128,
}

impl FileStamp {
    /// The stamp of `metadata`.
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            inode: (metadata.dev(), metadata.ino()),
            size: metadata.size(),
            modified: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

/// Reads the file of `source` (called `what` in messages) at `path`, with the stamp of what was
/// read: taken from the open file, so it names the content read even if the path is replaced
/// meanwhile.
fn read(source: &Source, what: &str, path: &Path) -> Result<(Loaded, FileStamp), IntelError> {
    let read_error = |source| IntelError::Read {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let stamp = FileStamp::of(&file.metadata().map_err(read_error)?);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read_error)?;
    let loaded = match source {
        Source::Country | Source::Asn => {
            Loaded::Database(Arc::new(Mmdb::from_bytes(bytes).map_err(|error| {
                IntelError::Database {
                    what: what.to_owned(),
                    path: path.to_path_buf(),
                    message: error.to_string(),
                }
            })?))
        }
        Source::Tags(_) => Loaded::List(Arc::new(CidrList::parse(&bytes).map_err(|bad| {
            IntelError::Line {
                what: what.to_owned(),
                path: path.to_path_buf(),
                line: bad.line,
                text: bad.text,
            }
        })?)),
    };
    Ok((loaded, stamp))
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;

    use super::mmdb::test::{database, geolite_country};
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// An `[audit]` config over files written into `dir`.
    pub(super) fn config(dir: &Path, lists: &[(&str, &str)]) -> config::Audit {
        let country = dir.join("country.mmdb");
        std::fs::write(
            &country,
            database(
                "GeoLite2-Country",
                &[
                    ("81.2.69.0/24", geolite_country("GB")),
                    ("2a02:2770::/32", geolite_country("NL")),
                    // A database may place special ranges: they still get no country.
                    ("10.0.0.0/8", geolite_country("ZZ")),
                ],
            ),
        )
        .unwrap();
        let asn = dir.join("asn.mmdb");
        #[derive(serde::Serialize)]
        struct Asn {
            autonomous_system_number: u32,
        }
        std::fs::write(
            &asn,
            database(
                "GeoLite2-ASN",
                &[
                    (
                        "81.2.69.0/24",
                        Asn {
                            autonomous_system_number: 20712,
                        },
                    ),
                    (
                        "10.0.0.0/8",
                        Asn {
                            autonomous_system_number: 64512,
                        },
                    ),
                ],
            ),
        )
        .unwrap();
        let mut ip_tags = BTreeMap::new();
        for (name, text) in lists {
            let path = dir.join(format!("{name}.txt"));
            std::fs::write(&path, text).unwrap();
            ip_tags.insert((*name).to_owned(), path);
        }
        config::Audit {
            geoip_database: Some(country),
            asn_database: Some(asn),
            ip_tags,
            ..config::Audit::default()
        }
    }

    #[test]
    fn facts_combine_ranges_databases_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (intel, _) = IpIntel::load(&config(
            dir.path(),
            &[
                ("tor-exit", "81.2.69.160\n2a02:2770::/48\n"),
                ("office", "10.1.0.0/16\n"),
                ("hosting", "81.2.69.0/24\n"),
            ],
        ))
        .unwrap();
        let facts = intel.facts(ip("81.2.69.160"));
        assert_eq!(facts.country.unwrap().as_str(), "GB");
        assert_eq!(facts.tags, ["asn:20712", "hosting", "tor-exit"]);
        let neighbour = intel.facts(ip("81.2.69.161"));
        assert_eq!(neighbour.tags, ["asn:20712", "hosting"]);
        // The mapped form of an IPv4 address is that address.
        assert_eq!(intel.facts(ip("::ffff:81.2.69.160")), facts);
        let v6 = intel.facts(ip("2a02:2770::1"));
        assert_eq!(v6.country.unwrap().as_str(), "NL");
        assert_eq!(v6.tags, ["tor-exit"]);
        // Special ranges: no country, no AS, even where the database has them; lists apply.
        let office = intel.facts(ip("10.1.2.3"));
        assert_eq!(office.country, None);
        assert_eq!(office.tags, ["private", "office"]);
        assert_eq!(intel.facts(ip("127.0.0.1")).tags, ["loopback"]);
        // Unknown to every source.
        assert_eq!(intel.facts(ip("8.8.8.8")), IpFacts::default());
    }

    #[test]
    fn without_files_only_the_special_ranges_are_known() {
        let none = IpIntel::none();
        assert_eq!(none.facts(ip("8.8.8.8")), IpFacts::default());
        assert_eq!(none.facts(ip("192.168.1.1")).tags, ["private"]);
        let (loaded, _) = IpIntel::load(&config::Audit::default()).unwrap();
        assert_eq!(loaded.facts(ip("fd00::1")).tags, ["unique-local"]);
    }

    #[test]
    fn a_file_that_cannot_be_used_fails_the_load_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = config(dir.path(), &[("tor-exit", "192.0.2.1\n")]);
        let missing = config::Audit {
            geoip_database: Some(dir.path().join("GeoLite2-Country.mmdb")),
            ..good.clone()
        };
        let error = IpIntel::load(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read geoip-database ")
                && error.contains("GeoLite2-Country.mmdb")
                && error.contains("No such file"),
            "{error}"
        );
        let not_a_database = config::Audit {
            asn_database: Some(good.ip_tags["tor-exit"].clone()),
            ..good.clone()
        };
        let error = IpIntel::load(&not_a_database).unwrap_err().to_string();
        assert!(
            error.starts_with("asn-database ") && error.contains("tor-exit.txt is not a MaxMind"),
            "{error}"
        );
        std::fs::write(&good.ip_tags["tor-exit"], "192.0.2.1\n\nhello\n").unwrap();
        let error = IpIntel::load(&good).unwrap_err().to_string();
        assert!(
            error.contains("list \"tor-exit\"") && error.contains("line 3: \"hello\""),
            "{error}"
        );
        let directory = config::Audit {
            geoip_database: Some(dir.path().to_path_buf()),
            ..config::Audit::default()
        };
        assert!(IpIntel::load(&directory).is_err());
        let reserved = config::Audit {
            ip_tags: BTreeMap::from([("private".to_owned(), dir.path().join("x"))]),
            ..config::Audit::default()
        };
        let error = IpIntel::load(&reserved).unwrap_err().to_string();
        assert!(error.contains("special-purpose range"), "{error}");
    }
}
