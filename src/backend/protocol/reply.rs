//! Replies to pdns: `result` always, `ttl` always a JSON number.

use std::collections::BTreeMap;

use serde::Serialize;

/// One record in a `lookup` or `list` reply (§5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Type, e.g. `A`.
    pub qtype: &'static str,
    /// Owner name with the final dot.
    pub qname: String,
    /// Presentation-format content.
    pub content: String,
    /// TTL: a JSON number.
    pub ttl: u32,
    /// The zone's id.
    pub domain_id: i64,
    /// 1 for authoritative data, 0 for a delegation's NS and what lies below it (glue): read
    /// by pdns only with remote-dnssec, and then as a number (a JSON `false` reads as 1).
    pub auth: u8,
}

/// A zone as pdns sees it (§6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainInfo {
    /// Zone id: the `zone-id` of later lookups.
    pub id: i64,
    /// Apex with the final dot.
    pub zone: String,
    /// `master`: pdns is the primary of every zone we serve, and notifies secondaries.
    pub kind: &'static str,
    /// Current SOA serial.
    pub serial: u32,
    /// The serial secondaries were last notified of.
    pub notified_serial: u32,
    /// Primaries, for secondary zones: none.
    pub masters: Vec<String>,
    /// Last secondary check: never.
    pub last_check: u32,
}

/// One key in a `getDomainKeys` reply (§14).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    /// Its id.
    pub id: i64,
    /// 257 or 256.
    pub flags: u16,
    /// Signs.
    pub active: bool,
    /// Its DNSKEY is served.
    pub published: bool,
    /// The private key, BIND's text: sent to pdns, never logged.
    pub content: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// A TSIG key as `getTSIGKey(s)` hands it to pdns.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TsigKey {
    /// Its name, with the final dot (`getTSIGKeys` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `hmac-sha256`...
    pub algorithm: &'static str,
    /// The secret, base64: sent to pdns, never logged.
    pub content: String,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A name's neighbours in the NSEC chain (§14 getBeforeAndAfterNamesAbsolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbours {
    /// The name at or before, relative to the zone (`""`: the apex).
    pub before: String,
    /// The name after, relative to the zone (`""`: the apex, after the last name).
    pub after: String,
    /// `before` as an absolute name: pdns requires the field (it uses it for NSEC3 only).
    pub unhashed: String,
}

/// The `result` of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// `true` (done) or `false` (a clean "no": not found, not supported).
    Bool(bool),
    /// Records, for lookup and list.
    Records(Vec<Record>),
    /// Zones, for getAllDomains.
    Domains(Vec<DomainInfo>),
    /// One zone, for getDomainInfo.
    Domain(DomainInfo),
    /// Metadata by kind, for getAllDomainMetadata.
    Metadata(BTreeMap<String, Vec<String>>),
    /// Metadata values, for getDomainMetadata.
    Values(Vec<String>),
    /// A zone's keys, for getDomainKeys.
    Keys(Vec<Key>),
    /// A new key's id, for addDomainKey.
    Id(i64),
    /// One TSIG key, for getTSIGKey.
    TsigKey(TsigKey),
    /// TSIG keys, for getTSIGKeys.
    TsigKeys(Vec<TsigKey>),
    /// A name's NSEC neighbours, for getBeforeAndAfterNamesAbsolute.
    Neighbours(Neighbours),
    /// No usable result: pdns answers SERVFAIL (an exception on its side), which is right for a
    /// store failure, where `false` would be cached as "no such name".
    Failure,
}

/// A reply to pdns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The result.
    pub outcome: Outcome,
    /// Lines pdns writes to its log as `[remotebackend]: ...`.
    pub log: Vec<String>,
}

impl Reply {
    /// A reply with `outcome` and no log lines.
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            log: Vec::new(),
        }
    }

    /// `{"result": false}`, with a log line for pdns's log.
    pub fn refusal(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Bool(false),
            log: vec![reason.into()],
        }
    }

    /// The reply as one JSON object, without a newline.
    pub fn to_json(&self) -> Vec<u8> {
        /// The object on the wire.
        #[derive(Serialize)]
        struct Wire<'a> {
            /// `null` for [`Outcome::Failure`].
            result: Option<&'a Outcome>,
            /// Omitted when empty.
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            log: &'a [String],
        }
        let result = (self.outcome != Outcome::Failure).then_some(&self.outcome);
        serde_json::to_vec(&Wire {
            result,
            log: &self.log,
        })
        .expect("replies serialise")
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn replies_always_carry_result_and_numeric_ttls() {
        let record = Record {
            qtype: "A",
            qname: "www.example.com.".into(),
            content: "192.0.2.10".into(),
            ttl: 300,
            domain_id: 1,
            auth: 1,
        };
        assert_eq!(
            String::from_utf8(Reply::new(Outcome::Records(vec![record])).to_json()).unwrap(),
            r#"{"result":[{"qtype":"A","qname":"www.example.com.","content":"192.0.2.10","ttl":300,"domain_id":1,"auth":1}]}"#
        );
        assert_eq!(
            Reply::new(Outcome::Bool(false)).to_json(),
            br#"{"result":false}"#
        );
        assert_eq!(
            Reply::new(Outcome::Metadata(BTreeMap::new())).to_json(),
            br#"{"result":{}}"#
        );
        assert_eq!(
            Reply::refusal("why").to_json(),
            br#"{"result":false,"log":["why"]}"#
        );
        assert_eq!(
            Reply {
                outcome: Outcome::Failure,
                log: vec!["store".into()]
            }
            .to_json(),
            br#"{"result":null,"log":["store"]}"#
        );
    }
}
