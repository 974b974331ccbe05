//! The PowerDNS remote backend: pdns_server (`launch=remote`) asks, the store answers.
//!
//! [`Backend::handle`] holds the remote-backend semantics and is transport-agnostic; `http.rs`,
//! `unix.rs` and `tcp.rs` (the last two through `lines.rs`) only move bytes. There is no sync step: `lookup` reads the store's served index
//! (an in-memory read model that is never behind a commit, see `crate::served`) or SQLite
//! itself, so an update acknowledged `good` is what the very next lookup returns.
//!
//! Semantics, per `../shared/docs/pdns-remote-backend.md` (pdns 4.7.3 as observed):
//! * `lookup` with zone-id -1 is pdns looking for the zone: a SOA comes back only for a name
//!   that is exactly an apex, never a parent's SOA for a child name.
//! * `ANY` returns every record at the name; other types are filtered here. Names match
//!   case-insensitively; the reply's case does not matter to pdns.
//! * Wildcards are returned when pdns asks for `*.zone.` itself; pdns synthesises.
//! * "Nothing" is `{"result": false}`; so is anything unknown or malformed. A store failure is
//!   `{"result": null}`, which pdns turns into SERVFAIL (not a cacheable "no such name").
//! * DNSSEC (`remote-dnssec=yes`, §11 and §14): pdns signs live with the keys and metadata kept
//!   here; an empty non-terminal answers an `ENT` row (NODATA, not NXDOMAIN), `auth` is 0 at
//!   and below a delegation, and NSEC zones get their neighbours from the served index's chain.

mod http;
mod lines;
pub mod protocol;
mod tcp;
mod unix;

pub use self::http::{BackendHttpService, decode_request};
pub use self::lines::{RequestLine, answer_line, read_request_line};
pub use self::tcp::serve_tcp;
pub use self::unix::{bind_unix, serve_unix, unix_listener};

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use self::protocol::{
    DomainInfo, Key, KeyChange, Neighbours, Outcome, QType, Query, Record, Reply, TsigKey,
};
use crate::inflight::InFlight;
use crate::model::dnssec::{Metadata, metadata_refusal};
use crate::model::rdata::{ServedType, StaticType};
use crate::model::zone::ServedRecord;
use crate::model::zone::Zone;
use crate::model::{is_within, names_between, normalize_name as normalize, parse_notify_target};
use crate::served::Served;
use crate::served::ServedView;
use crate::served::StoreError;

/// Answers remote-backend queries from the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The store, as `serve` holds it.
    served: Served,
    /// The call counter and duration histogram of each method (by [`Query::method_index`]) on
    /// this handle's connector: looked up once, so that a lookup pays no label hashing.
    instruments: Arc<[(Counter, Histogram)]>,
    /// The connections' last lookups, which a purge waits for (shared by every connector and
    /// the purger).
    inflight: Arc<InFlight>,
}

/// The metrics of each method on `connector`.
fn instruments(connector: &'static str) -> Arc<[(Counter, Histogram)]> {
    let metrics = crate::metrics::metrics();
    protocol::METHOD_NAMES
        .iter()
        .map(|method| {
            let labels = crate::metrics::BackendLabels { method, connector };
            (
                metrics.backend_calls.get_or_create(&labels).clone(),
                metrics.backend_duration.get_or_create(&labels).clone(),
            )
        })
        .collect()
}

impl Backend {
    /// A backend over `served`.
    pub fn new(served: Served) -> Self {
        Self {
            served,
            instruments: instruments("http"),
            inflight: InFlight::new(),
        }
    }

    /// This backend, counted in the metrics as serving `connector`.
    pub fn for_connector(&self, connector: &'static str) -> Self {
        Self {
            served: self.served.clone(),
            instruments: instruments(connector),
            inflight: Arc::clone(&self.inflight),
        }
    }

    /// The connections' last lookups: what a purge of this backend's answers waits for.
    pub fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// Answers `query`. Blocking (SQLite): async callers use [`Backend::handle_async`].
    pub fn handle(&self, query: &Query) -> Reply {
        let started = std::time::Instant::now();
        let reply = self.answer(query);
        let (calls, duration) = &self.instruments[query.method_index()];
        calls.inc();
        crate::metrics::observe(duration, started.elapsed());
        reply
    }

    /// What [`Backend::handle`] answers.
    fn answer(&self, query: &Query) -> Reply {
        let served = &self.served;
        let answer = match query {
            Query::Initialize => return Reply::new(Outcome::Bool(true)),
            Query::GetAllDomainMetadata { name } => served
                .zone_with_metadata(&normalize(name))
                .map(|found| Outcome::Metadata(found.map(zone_metadata).unwrap_or_default())),
            Query::GetDomainMetadata { name, kind } => {
                served.zone_with_metadata(&normalize(name)).map(|found| {
                    let values = found
                        .map(zone_metadata)
                        .and_then(|mut metadata| metadata.remove(&kind.to_ascii_uppercase()));
                    Outcome::Values(values.unwrap_or_default())
                })
            }
            Query::SetDomainMetadata { name, kind, values } => {
                if let Some(reason) = metadata_refusal(kind) {
                    return Reply::refusal(format!("certadns-ddns: {kind} {reason}"));
                }
                served
                    .set_zone_metadata(&normalize(name), kind, values)
                    .map(Outcome::Bool)
            }
            Query::GetDomainKeys { name } => served.zone_keys(&normalize(name)).map(|keys| {
                keys.map_or(Outcome::Bool(false), |keys| {
                    Outcome::Keys(
                        keys.into_iter()
                            .map(|key| Key {
                                id: key.id,
                                flags: key.flags,
                                active: key.active,
                                published: key.published,
                                content: key.content,
                            })
                            .collect(),
                    )
                })
            }),
            Query::AddDomainKey { name, key } => served
                .add_zone_key(&normalize(name), key)
                .map(|id| id.map_or(Outcome::Id(-1), Outcome::Id)),
            Query::ChangeDomainKey { name, id, change } => match change {
                KeyChange::State(state) => served.set_zone_key(&normalize(name), *id, *state),
                KeyChange::Remove => served.remove_zone_key(&normalize(name), *id),
            }
            .map(Outcome::Bool),
            Query::GetBeforeAndAfterNames { id, qname } => {
                match served.lookup(|view| Ok(view.zone_by_id(*id)?.map(Cow::into_owned))) {
                    Ok(Some(zone)) => match served.zone_with_metadata(&zone.name) {
                        Ok(Some((_, metadata))) if metadata.contains_key("NSEC3PARAM") => {
                            // Non-narrow NSEC3 needs a chain of hashes, which is not kept.
                            return Reply::refusal(
                                "certadns-ddns: NSEC3 needs narrow mode with this backend: \
                                 pdnsutil set-nsec3 ZONE '1 0 0 -' narrow (or sign with NSEC)",
                            );
                        }
                        Ok(_) => served.lookup(|view| neighbours(view, &zone, qname)),
                        Err(error) => Err(error),
                    },
                    Ok(None) => Ok(Outcome::Bool(false)),
                    Err(error) => Err(error),
                }
            }
            Query::GetTsigKey { name } => served.pdns_tsig_key(&normalize(name)).map(|key| {
                key.map_or(Outcome::Bool(false), |key| {
                    Outcome::TsigKey(TsigKey {
                        name: None,
                        algorithm: key.algorithm.as_str(),
                        content: key.secret,
                    })
                })
            }),
            Query::GetTsigKeys => served.pdns_tsig_keys().map(|keys| {
                Outcome::TsigKeys(
                    keys.into_iter()
                        .map(|key| TsigKey {
                            name: Some(format!("{}.", key.name)),
                            algorithm: key.algorithm.as_str(),
                            content: key.secret,
                        })
                        .collect(),
                )
            }),
            Query::ChangeTsigKey => {
                return Reply::refusal(
                    "certadns-ddns: TSIG keys are made and revoked with `certadns-ddns tsig`",
                );
            }
            Query::StartTransaction { domain_id } => {
                if *domain_id >= 0 {
                    return Reply::refusal(
                        "certadns-ddns: pdns does not replace this backend's records \
                         (the store is written through certadns-ddns)",
                    );
                }
                // Each key and metadata write commits on its own: nothing to hold.
                return Reply::new(Outcome::Bool(true));
            }
            Query::EndTransaction => return Reply::new(Outcome::Bool(true)),
            Query::GetUpdatedMasters => served
                .updated_zones()
                .map(|zones| Outcome::Domains(zones.iter().map(domain_info).collect())),
            Query::SetNotified { id, serial } => {
                served.set_notified(*id, *serial).map(Outcome::Bool)
            }
            Query::Unknown { method } => {
                tracing::debug!(%method, "remote backend: method not implemented");
                return Reply::new(Outcome::Bool(false));
            }
            Query::Lookup {
                qname,
                qtype,
                zone_id,
            } => served.lookup(|view| lookup(view, qname, *qtype, *zone_id)),
            Query::List { zonename } => served.zone_listing(&normalize(zonename)).map(|listing| {
                listing.map_or(Outcome::Bool(false), |(zone, records)| {
                    Outcome::Records(
                        records
                            .into_iter()
                            .map(|record| wire_record(record, zone.id))
                            .collect(),
                    )
                })
            }),
            Query::GetAllDomains => served
                .zones()
                .map(|zones| Outcome::Domains(zones.iter().map(domain_info).collect())),
            Query::GetDomainInfo { name } => served.zone(&normalize(name)).map(|zone| match zone {
                Some(zone) => Outcome::Domain(domain_info(&zone)),
                None => Outcome::Bool(false),
            }),
        };
        answer.map_or_else(
            |error| {
                if let StoreError::Conflict(reason) = &error {
                    return Reply::refusal(format!("certadns-ddns: {reason}"));
                }
                tracing::error!(%error, ?query, "remote backend: store failure");
                Reply {
                    outcome: Outcome::Failure,
                    log: vec![format!("certadns-ddns: store failure: {error}")],
                }
            },
            Reply::new,
        )
    }

    /// [`Backend::handle`] for async callers. Lookups and the other point reads run inline:
    /// they come from the served index or an indexed read that never waits for the writer,
    /// cheaper than a hand-off to a blocking thread. `list` (a whole zone, for AXFR) and the
    /// writes go to a blocking thread.
    pub async fn handle_async(&self, query: Query) -> Reply {
        let blocking = matches!(
            query,
            Query::List { .. }
                | Query::SetNotified { .. }
                | Query::AddDomainKey { .. }
                | Query::ChangeDomainKey { .. }
                | Query::SetDomainMetadata { .. }
                | Query::GetBeforeAndAfterNames { .. }
        );
        if !blocking {
            return self.handle(&query);
        }
        let backend = self.clone();
        tokio::task::spawn_blocking(move || backend.handle(&query))
            .await
            .unwrap_or_else(|error| Reply {
                outcome: Outcome::Failure,
                log: vec![format!("certadns-ddns: backend task failed: {error}")],
            })
    }
}

/// `lookup`: the records at `qname` of type `qtype` (or all, for ANY).
fn lookup(
    view: &dyn ServedView,
    qname: &str,
    qtype: QType,
    zone_id: i64,
) -> Result<Outcome, StoreError> {
    let name = normalize(qname);
    if name.is_empty() || qtype == QType::Unserved {
        return Ok(Outcome::Bool(false));
    }
    let zone = if zone_id >= 0 {
        view.zone_by_id(zone_id)?
    } else if qtype == QType::Is(ServedType::Soa) {
        // The SOA walk: only an exact apex has a SOA.
        view.zone_by_name(&name)?
    } else {
        view.enclosing_zone(&name)?
    };
    let Some(zone) = zone.filter(|zone| is_within(&name, &zone.name)) else {
        return Ok(Outcome::Bool(false));
    };
    let at_name = view.records_at(&zone, &name)?;
    let below_apex = name != zone.name;
    if at_name.is_empty() {
        // An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN, and signed so.
        if below_apex && qtype == QType::Any && view.has_names_below(&zone, &name)? {
            let auth = !is_delegated(view, &zone, &name)?;
            return Ok(Outcome::Records(vec![Record {
                qtype: "ENT",
                qname: qname.to_string(),
                content: String::new(),
                ttl: 0,
                domain_id: zone.id,
                auth: u8::from(auth),
            }]));
        }
        return Ok(Outcome::Bool(false));
    }
    // At or below a delegation, nothing is authoritative (the NS set there and glue): pdns
    // signs none of it.
    let auth = !(below_apex
        && (at_name
            .iter()
            .any(|record| record.record_type == ServedType::Stored(StaticType::Ns))
            || is_delegated(view, &zone, &name)?));
    let records: Vec<Record> = at_name
        .into_iter()
        .filter(|record| qtype == QType::Any || qtype == QType::Is(record.record_type))
        .map(|record| Record {
            auth: u8::from(auth),
            ..wire_record(record, zone.id)
        })
        .collect();
    Ok(if records.is_empty() {
        Outcome::Bool(false)
    } else {
        Outcome::Records(records)
    })
}

/// `getBeforeAndAfterNamesAbsolute` for NSEC: `qname` is relative to `zone` (`.` the apex).
fn neighbours(view: &dyn ServedView, zone: &Zone, qname: &str) -> Result<Outcome, StoreError> {
    let relative = normalize(qname);
    let name = if relative.is_empty() {
        zone.name.clone()
    } else {
        format!("{relative}.{}", zone.name)
    };
    let (before, after) = view.nsec_neighbours(zone, &name)?;
    let unhashed = if before.is_empty() {
        format!("{}.", zone.name)
    } else {
        format!("{before}.{}.", zone.name)
    };
    Ok(Outcome::Neighbours(Neighbours {
        before,
        after,
        unhashed,
    }))
}

/// Whether a name strictly between `name` and the apex holds NS records: `name` lies below a
/// delegation. No read at all for a name right below the apex (most DDNS names).
fn is_delegated(view: &dyn ServedView, zone: &Zone, name: &str) -> Result<bool, StoreError> {
    for parent in names_between(name, &zone.name) {
        if view
            .records_at(zone, parent)?
            .iter()
            .any(|record| record.record_type == ServedType::Stored(StaticType::Ns))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A served record as pdns wants it.
fn wire_record(record: ServedRecord, zone_id: i64) -> Record {
    Record {
        qtype: record.record_type.as_str(),
        qname: format!("{}.", record.name),
        content: record.content,
        ttl: record.ttl,
        domain_id: zone_id,
        auth: 1,
    }
}

/// A zone as pdns's DomainInfo.
fn domain_info(zone: &Zone) -> DomainInfo {
    DomainInfo {
        id: zone.id,
        zone: format!("{}.", zone.name),
        kind: "master",
        serial: zone.serial,
        notified_serial: zone.notified_serial,
        masters: Vec::new(),
        last_check: 0,
    }
}

/// A zone's metadata as pdns reads it: what pdns stored (`pdnsutil set-nsec3`, `set-meta`),
/// and, from the zone's own settings, `ALSO-NOTIFY` (the secondaries to notify besides the
/// NS set) and `ALLOW-AXFR-FROM` (their addresses, which may then transfer the zone whatever
/// pdns's `allow-axfr-ips` says). Empty kinds are left out.
fn zone_metadata((zone, stored): (Zone, Metadata)) -> Metadata {
    let mut metadata = stored;
    if !zone.also_notify.is_empty() {
        let allowed = zone
            .also_notify
            .iter()
            .filter_map(|target| parse_notify_target(target).ok())
            .map(|(ip, _)| ip.to_string())
            .collect();
        metadata.insert("ALSO-NOTIFY".to_string(), zone.also_notify.clone());
        metadata.insert("ALLOW-AXFR-FROM".to_string(), allowed);
    }
    metadata
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_store_failure_is_a_null_result_not_a_cacheable_no() {
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("t.db"),
            &crate::store::StoreOptions::default(),
        )
        .unwrap();
        let backend = Backend::new(Served::without_index(store.clone()));
        let zone: crate::model::DomainName = "example.com".parse().unwrap();
        let ns: crate::model::DomainName = "ns1.example.com".parse().unwrap();
        store
            .write(|tx| {
                let timers = crate::store::zones::SoaTimers::default();
                crate::store::zones::insert_zone(tx, &zone, &[ns], None, timers, "t")
            })
            .unwrap();
        let lookup = Query::Lookup {
            qname: "www.example.com.".into(),
            qtype: QType::Any,
            zone_id: 1,
        };
        assert_eq!(
            backend.handle(&lookup).to_json(),
            br#"{"result":false}"#,
            "no such name: a clean no"
        );
        // Break the store under the backend: every lookup now fails in SQLite.
        store
            .write(|tx| Ok(tx.execute_batch("DROP TABLE records")?))
            .unwrap();
        let reply = backend.handle(&lookup);
        assert_eq!(reply.outcome, Outcome::Failure);
        let json: serde_json::Value = serde_json::from_slice(&reply.to_json()).unwrap();
        assert_eq!(
            json["result"],
            serde_json::Value::Null,
            "pdns turns this into SERVFAIL"
        );
        assert!(json["log"][0].as_str().unwrap().contains("store failure"));
        // Methods that need no store still answer.
        assert_eq!(
            backend.handle(&Query::Initialize).to_json(),
            br#"{"result":true}"#
        );
    }

    /// Empty non-terminals, delegations and glue, keys, metadata and TSIG keys as pdns reads
    /// them, from the served index and from SQLite alike.
    #[test]
    fn dnssec_answers_ents_auth_keys_metadata_and_tsig() {
        use crate::model::dnssec::{NewZoneKey, SigningAlgorithm};
        use crate::model::rdata::StaticType;
        use crate::model::tsig::{TsigAlgorithm, TsigScope};
        use crate::store::Store;
        use crate::store::records::insert_record;
        use crate::store::tsig::{NewTsigKey, create_tsig_key};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("t.db"),
            &crate::store::StoreOptions::default(),
        )
        .unwrap();
        let zone: crate::model::DomainName = "example.com".parse().unwrap();
        let ns: crate::model::DomainName = "ns1.example.com".parse().unwrap();
        store
            .write(|tx| {
                let timers = crate::store::zones::SoaTimers::default();
                let id = crate::store::zones::insert_zone(tx, &zone, &[ns], None, timers, "t")?;
                let zone = crate::store::zones::get_zone_by_id(tx, id)?.unwrap();
                for (name, kind, content) in [
                    ("x.deep.example.com", StaticType::Txt, "\"e\""),
                    ("sub.example.com", StaticType::Ns, "ns.sub.example.com."),
                    ("ns.sub.example.com", StaticType::A, "192.0.2.9"),
                    ("www.example.com", StaticType::A, "192.0.2.1"),
                ] {
                    insert_record(tx, &zone, name, kind, content, 300, "t")?;
                }
                for (name, subtree) in [("whole", None), ("part", Some("www.example.com"))] {
                    create_tsig_key(
                        tx,
                        &NewTsigKey {
                            name: name.into(),
                            algorithm: TsigAlgorithm::HmacSha256,
                            secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
                            scope: TsigScope::Zone {
                                zone_id: id,
                                subtree: subtree.map(Into::into),
                                types: vec![StaticType::A],
                            },
                        },
                        "t",
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let lookup = |qname: &str| Query::Lookup {
            qname: qname.into(),
            qtype: QType::Any,
            zone_id: 1,
        };
        let json = |backend: &Backend, query: &Query| -> serde_json::Value {
            serde_json::from_slice(&backend.handle(query).to_json()).unwrap()
        };
        for backend in [
            Backend::new(Served::without_index(store.clone())),
            Backend::new(Served::open(store.clone()).unwrap()),
        ] {
            let ent = json(&backend, &lookup("Deep.Example.com."));
            assert_eq!(ent["result"][0]["qtype"], "ENT", "{ent}");
            assert_eq!(ent["result"][0]["content"], "");
            assert_eq!(ent["result"][0]["auth"], 1);
            assert_eq!(
                json(&backend, &lookup("nope.example.com."))["result"],
                false
            );
            assert_eq!(
                json(&backend, &lookup("www.example.com."))["result"][0]["auth"],
                1
            );
            assert_eq!(
                json(&backend, &lookup("sub.example.com."))["result"][0]["auth"],
                0
            );
            assert_eq!(
                json(&backend, &lookup("ns.sub.example.com."))["result"][0]["auth"],
                0,
                "glue"
            );
            assert_eq!(
                json(&backend, &lookup("example.com."))["result"][0]["auth"],
                1
            );
        }
        let backend = Backend::new(Served::without_index(store.clone()));
        // Keys: added, listed, changed, removed; an unknown zone is a clean no.
        let add = Query::AddDomainKey {
            name: "example.com.".into(),
            key: NewZoneKey {
                flags: 257,
                active: true,
                published: true,
                content: SigningAlgorithm::Ed25519.generate(),
            },
        };
        assert_eq!(json(&backend, &add)["result"], 1);
        let elsewhere = Query::AddDomainKey {
            name: "other.test.".into(),
            key: NewZoneKey {
                flags: 257,
                active: true,
                published: true,
                content: SigningAlgorithm::Ed25519.generate(),
            },
        };
        assert_eq!(json(&backend, &elsewhere)["result"], -1);
        let deactivate = Query::ChangeDomainKey {
            name: "example.com.".into(),
            id: 1,
            change: KeyChange::State(crate::model::dnssec::KeyState::Active(false)),
        };
        assert_eq!(json(&backend, &deactivate)["result"], true);
        let keys = json(
            &backend,
            &Query::GetDomainKeys {
                name: "example.com.".into(),
            },
        );
        assert_eq!(keys["result"][0]["active"], false, "{keys}");
        assert_eq!(keys["result"][0]["flags"], 257);
        // What a store failure logs (`?query`) and what a reply's Debug shows: never the key.
        let listed = backend.handle(&Query::GetDomainKeys {
            name: "example.com.".into(),
        });
        for printed in [format!("{add:?}"), format!("{listed:?}")] {
            assert!(!printed.contains("PrivateKey"), "{printed}");
        }
        // Metadata: stored kinds merged with the zone's own; refused kinds say why.
        let set = |kind: &str, values: &[&str]| Query::SetDomainMetadata {
            name: "example.com.".into(),
            kind: kind.into(),
            values: values.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(
            json(&backend, &set("NSEC3PARAM", &["1 0 0 -"]))["result"],
            true
        );
        let refused = json(&backend, &set("PRESIGNED", &["1"]));
        assert_eq!(refused["result"], false);
        assert!(refused["log"][0].as_str().unwrap().contains("signs live"));
        assert_eq!(
            json(&backend, &set("ALSO-NOTIFY", &["192.0.2.7"]))["result"],
            false
        );
        let all = json(
            &backend,
            &Query::GetAllDomainMetadata {
                name: "example.com.".into(),
            },
        );
        assert_eq!(all["result"]["NSEC3PARAM"][0], "1 0 0 -");
        assert!(all["result"].get("PRESIGNED").is_none());
        // TSIG: a whole zone's admin key reaches pdns; a subtree key never does.
        let tsig = |name: &str| {
            json(
                &backend,
                &Query::GetTsigKey {
                    name: format!("{name}."),
                },
            )
        };
        assert_eq!(tsig("whole")["result"]["algorithm"], "hmac-sha256");
        assert_eq!(tsig("part")["result"], false);
        let listed = json(&backend, &Query::GetTsigKeys);
        assert_eq!(listed["result"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["result"][0]["name"], "whole.");
        // NSEC neighbours, relative to the zone; refused once NSEC3 (not narrow) is set.
        let neighbours = |qname: &str| {
            json(
                &backend,
                &Query::GetBeforeAndAfterNames {
                    id: 1,
                    qname: qname.into(),
                },
            )
        };
        assert_eq!(json(&backend, &set("NSEC3PARAM", &[]))["result"], true);
        let answer = neighbours("nope.");
        assert_eq!(answer["result"]["before"], "x.deep", "{answer}");
        assert_eq!(answer["result"]["after"], "sub");
        assert_eq!(answer["result"]["unhashed"], "x.deep.example.com.");
        let answer = neighbours("www.");
        assert_eq!(answer["result"]["before"], "www", "{answer}");
        assert_eq!(answer["result"]["after"], "", "wraps to the apex: {answer}");
        let answer = neighbours(".");
        assert_eq!(answer["result"]["before"], "", "the apex: {answer}");
        assert_eq!(answer["result"]["after"], "x.deep", "{answer}");
        assert_eq!(
            json(&backend, &set("NSEC3PARAM", &["1 0 0 -"]))["result"],
            true
        );
        let refused = neighbours("nope.");
        assert_eq!(refused["result"], false);
        assert!(refused["log"][0].as_str().unwrap().contains("narrow"));
    }
}
