//! Zones and the records they serve, as DNS and the account pages see them.

use super::rdata::ServedType;

/// A zone row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Row id.
    pub id: i64,
    /// Apex name.
    pub name: String,
    /// NS host names; the first is the SOA MNAME.
    pub nameservers: Vec<String>,
    /// SOA RNAME, as a DNS name.
    pub hostmaster: String,
    /// SOA serial.
    pub serial: u32,
    /// SOA refresh, seconds.
    pub refresh: u32,
    /// SOA retry, seconds.
    pub retry: u32,
    /// SOA expire, seconds.
    pub expire: u32,
    /// SOA minimum (negative-caching TTL), seconds.
    pub minimum: u32,
    /// TTL of the SOA and NS records.
    pub ttl: u32,
    /// Creation time.
    pub created_at: String,
    /// The serial secondaries were last notified of.
    pub notified_serial: u32,
    /// Secondaries to notify besides the NS set: `ip` or `ip:port` (`[v6]:port`).
    pub also_notify: Vec<String>,
}

/// One record as served: owner name (lower case, no final dot), type, presentation content, TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRecord {
    /// Owner name.
    pub name: String,
    /// Record type.
    pub record_type: ServedType,
    /// Zone-file presentation content.
    pub content: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Where it comes from, for listings.
    pub source: RecordSource,
}

/// Which table a served record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSource {
    /// The zone row: SOA and apex NS.
    Zone,
    /// An admin's static record.
    Static,
    /// A DDNS domain.
    Dynamic,
    /// An ACME DNS-01 challenge value.
    Challenge,
}

impl RecordSource {
    /// A short label for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zone => "zone",
            Self::Static => "static",
            Self::Dynamic => "ddns",
            Self::Challenge => "acme",
        }
    }
}
