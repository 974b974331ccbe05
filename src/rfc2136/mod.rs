//! The DNS listener (`update-dns-listen`): RFC 2136 dynamic updates signed with TSIG (RFC
//! 8945), on the same write path as `/nic/update` (what `nsupdate`, ddclient's and inadyn's
//! nsupdate modes, lego, certbot, external-dns, cert-manager and Kea send), and zone
//! transfers to secondaries with NOTIFY (`[transfers]`).
//!
//! [`DnsUpdates::answer`] takes one DNS message and gives its answer: UPDATE messages are
//! checked (TSIG, zone, prerequisites, the key's scope; `message.rs`) and applied whole or not
//! at all in one transaction with their audit rows, then pdns's caches are purged, as for a
//! dyndns2 update; SOA queries for the store's zones are answered, for the clients that look
//! up the zone of a name before they update it and for secondaries' refresh checks; AXFR and
//! IXFR are answered as `[transfers]` allows (`transfer.rs`: over TCP, many messages, streamed
//! from the store). Anything else is REFUSED: pdns answers DNS. `listen.rs` carries the
//! messages over UDP and TCP; `notify.rs` tells secondaries of new serials.

mod listen;
pub mod message;
mod notify;
mod transfer;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

pub use self::listen::{DnsListener, ListenOptions, serve};
pub use self::notify::{Notifier, notify_until_stopped};
pub use self::transfer::{Answer, MESSAGE_BYTES, MESSAGES_AHEAD, wire_record};
use crate::abuse::{Pace, UpdateRateGuard};
use crate::auth::tsig::{self, TsigError, Verified};
use crate::config::LiveSections;
use crate::intel::IpIntel;
use crate::model::AuthMethod;
use crate::model::audit::ChangeContext;
use crate::model::dnsupdate::{
    DnsUpdateOutcome, DnsUpdatePlan, FamilyChange, PrerequisiteFailure, UpdateActor,
};
use crate::model::time::timestamp_at;
use crate::model::tsig::TsigScope;
use crate::purge::Purging;
use crate::served::Served;

/// Answers RFC 2136 messages. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DnsUpdates {
    /// The store, as `serve` holds it.
    served: Served,
    /// The update pace, shared with `/nic/update` and the ACME endpoints.
    rate_guard: Arc<UpdateRateGuard>,
    /// Purges pdns's caches after a change.
    purging: Purging,
    /// Country and tags of addresses, for the audit rows.
    intel: IpIntel,
    /// `[acme]`, for the lifetime of ACME values (and whether they are taken at all).
    sections: LiveSections,
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl DnsUpdates {
    /// Updates to `served`, paced by `rate_guard`, purged through `purging`, audited with
    /// `intel`, ACME values living as `[acme]` says.
    pub fn new(
        served: Served,
        rate_guard: Arc<UpdateRateGuard>,
        purging: Purging,
        intel: IpIntel,
        sections: &LiveSections,
    ) -> Self {
        Self {
            served,
            rate_guard,
            purging,
            intel,
            sections: sections.clone(),
        }
    }

    /// The answer to `request` from `client` over UDP; None when nothing is to be sent (a
    /// message too short to carry an ID, or an answer rather than a question).
    pub async fn answer(&self, request: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        match self.answer_over(request, client, false).await? {
            Answer::One(answer) => Some(answer),
            // Only TCP streams.
            Answer::Stream(_) => None,
        }
    }

    /// The answer to `request` from `client` over TCP: a zone transfer's is many messages.
    pub async fn answer_tcp(&self, request: &[u8], client: IpAddr) -> Option<Answer> {
        self.answer_over(request, client, true).await
    }

    async fn answer_over(&self, request: &[u8], client: IpAddr, tcp: bool) -> Option<Answer> {
        if request.len() < 12 || request[2] & 0x80 != 0 {
            return None;
        }
        let message = match Message::from_vec(request) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%client, %error, "unreadable DNS message");
                return Some(Answer::One(header_only(request, ResponseCode::FormErr)));
            }
        };
        if message.message_type() != MessageType::Query {
            return None;
        }
        let now = unix_now();
        // Signed or not, checked first: an answer to a signed question is signed (or says why
        // it cannot be), whatever it says.
        let verified = match tsig::verify(request, now, |name| self.served.tsig_key(name)) {
            Ok(verified) => Some(verified),
            Err(TsigError::Unsigned) => None,
            Err(error) => {
                count(message.op_code(), refusal_rcode(&error));
                return Some(Answer::One(
                    self.tsig_refusal(&message, &error, now, client),
                ));
            }
        };
        if message.op_code() == OpCode::Query {
            if let Some(kind) = transfer::transfer_kind(&message) {
                let (answer, rcode) = self.transfer(&message, kind, verified, client, tcp).await;
                count(OpCode::Query, rcode);
                return Some(answer);
            }
        }
        let (response, verified) = match message.op_code() {
            OpCode::Query => (self.query(&message), verified),
            OpCode::Update => match verified {
                Some(verified) => (
                    self.update(&message, &verified, client).await,
                    Some(verified),
                ),
                None => {
                    tracing::debug!(%client, "RFC 2136 update refused: not signed with a TSIG key");
                    (respond(&message, ResponseCode::Refused), None)
                }
            },
            _ => (respond(&message, ResponseCode::NotImp), verified),
        };
        count(message.op_code(), response.response_code());
        finish(response, verified.as_ref(), now).map(Answer::One)
    }

    /// The answer to a signature that did not check out (RFC 8945 §5.2): NOTAUTH with the
    /// TSIG error, signed only for BADTIME. Refusals of messages whose key checked out are
    /// logged at info (an account's or an admin's client needs fixing); these are not.
    fn tsig_refusal(
        &self,
        message: &Message,
        error: &TsigError,
        now: u64,
        client: IpAddr,
    ) -> Vec<u8> {
        // Anyone can send these, from many addresses: at debug, counted in the metrics
        // (NOTAUTH, FORMERR), so that they cannot flood the log.
        tracing::debug!(%client, %error, "DNS message refused");
        let mut response = respond(message, refusal_rcode(error));
        let signed = match error {
            TsigError::BadTime { verified, .. } => {
                tsig::sign_response(&mut response, verified, now, true)
            }
            other => tsig::unsigned_error(&mut response, other, now),
        };
        if let Err(error) = signed {
            tracing::warn!(%error, "cannot add the TSIG record of a refusal");
        }
        response
            .to_vec()
            .unwrap_or_else(|_| header_only(&[0; 12], ResponseCode::ServFail))
    }

    /// A query: the SOA of a zone in the store (at its apex, or in the authority section for a
    /// name beneath it, as a negative answer gives it), so that clients find the zone to
    /// update. Everything else is REFUSED: this is not the DNS server, pdns is.
    fn query(&self, message: &Message) -> Message {
        let [query] = message.queries() else {
            return respond(message, ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN {
            return respond(message, ResponseCode::Refused);
        }
        let name = message::plain(query.name());
        // The served index's zone walk (memory), as pdns's lookups use it.
        let zone = self
            .served
            .lookup(|view| Ok(view.enclosing_zone(&name)?.map(Cow::into_owned)));
        let zone = match zone {
            Ok(Some(zone)) => zone,
            Ok(None) => return respond(message, ResponseCode::Refused),
            Err(error) => {
                tracing::error!(%error, "SOA query not answered: store failure");
                return respond(message, ResponseCode::ServFail);
            }
        };
        let mut response = respond(message, ResponseCode::NoError);
        response.set_authoritative(true);
        let soa = soa_record(&zone);
        let at_apex = zone.name == name;
        if at_apex && query.query_type() == RecordType::SOA {
            response.add_answer(soa);
        } else if at_apex || query.query_type() == RecordType::SOA {
            response.add_name_server(soa);
        } else {
            // Only the zone's SOA is answered here; pdns answers the rest.
            return respond(message, ResponseCode::Refused);
        }
        response
    }

    /// An UPDATE signed with `verified`'s key: checked whole, then applied whole.
    async fn update(&self, message: &Message, verified: &Verified, client: IpAddr) -> Message {
        let key = &verified.key;
        let refuse = |rcode: ResponseCode, why: &str| {
            tracing::info!(%client, key = %key.name, %rcode, why, "RFC 2136 update refused");
            respond(message, rcode)
        };
        let zone_name = match message::zone_of(message) {
            Ok(zone) => zone,
            Err(refusal) => return refuse(refusal.rcode, &refusal.why),
        };
        let zone = self
            .served
            .lookup(|view| Ok(view.zone_by_name(&zone_name)?.map(Cow::into_owned)));
        let zone = match zone {
            Ok(Some(zone)) => zone,
            Ok(None) => return refuse(ResponseCode::NotAuth, "not a zone of this server"),
            Err(error) => {
                tracing::error!(%error, "update not applied: store failure");
                return respond(message, ResponseCode::ServFail);
            }
        };
        let prerequisites = match message::prerequisites(message, &zone.name) {
            Ok(prerequisites) => prerequisites,
            Err(refusal) => return refuse(refusal.rcode, &refusal.why),
        };
        let changes = match message::changes(message, &zone.name, zone.id, &key.scope) {
            Ok(changes) => changes,
            Err(refusal) => return refuse(refusal.rcode, &refusal.why),
        };
        let actor = match &key.scope {
            TsigScope::Account { user_id } => UpdateActor::Account { user_id: *user_id },
            TsigScope::Zone { types, .. } => UpdateActor::Zone {
                types: types.clone(),
            },
        };
        let lifetime = self.sections.acme.load().lifetime();
        if !changes.challenges.is_empty() && lifetime.is_none() {
            return refuse(
                ResponseCode::Refused,
                "ACME values are off ([acme] enabled)",
            );
        }
        // The pace of `/nic/update`, per account and name: a flood through either is held.
        if let UpdateActor::Account { user_id } = actor {
            let names = changes
                .hosts
                .iter()
                .map(|change| change.host.to_string())
                .chain(
                    changes
                        .challenges
                        .iter()
                        .map(|(host, _)| crate::model::challenge::challenge_name(host)),
                );
            for name in names {
                if let Pace::Refused(episode) = self.rate_guard.admit(user_id, &name) {
                    self.served.note_abuse(user_id, &name, &episode);
                    return refuse(ResponseCode::Refused, "flagged for abuse");
                }
            }
        }
        let mut context = ChangeContext {
            source_ip: Some(client),
            peer_ip: Some(client),
            auth_method: AuthMethod::Tsig,
            tsig_key: Some(key.name.clone()),
            source_facts: self.intel.facts(client),
            ..ChangeContext::admin()
        };
        context.address_facts = changes
            .hosts
            .iter()
            .flat_map(|change| [change.v4, change.v6])
            .filter_map(|family| match family {
                FamilyChange::Set(ip) => Some((ip, self.intel.facts(ip))),
                _ => None,
            })
            .collect();
        let plan = DnsUpdatePlan {
            zone_id: zone.id,
            key_id: key.id,
            actor,
            prerequisites,
            hosts: changes.hosts,
            challenges: changes.challenges,
            statics: changes.statics,
            challenges_expire_at: timestamp_at(SystemTime::now() + lifetime.unwrap_or_default()),
            context,
        };
        match self.served.apply_dns_update(plan).await {
            Ok(DnsUpdateOutcome::Applied { stale, changed }) => {
                if changed {
                    tracing::info!(%client, key = %key.name, zone = %zone.name, "RFC 2136 update applied");
                    self.purging.purge(stale).await;
                }
                respond(message, ResponseCode::NoError)
            }
            Ok(DnsUpdateOutcome::Prerequisite(failure)) => {
                let rcode = match failure {
                    PrerequisiteFailure::YxDomain => ResponseCode::YXDomain,
                    PrerequisiteFailure::YxRrset => ResponseCode::YXRRSet,
                    PrerequisiteFailure::NxDomain => ResponseCode::NXDomain,
                    PrerequisiteFailure::NxRrset => ResponseCode::NXRRSet,
                };
                tracing::debug!(%client, key = %key.name, %rcode, "RFC 2136 prerequisite not met");
                respond(message, rcode)
            }
            Ok(DnsUpdateOutcome::Refused(why)) => refuse(ResponseCode::Refused, &why),
            Err(error) => {
                tracing::error!(%error, "RFC 2136 update not applied: store failure");
                respond(message, ResponseCode::ServFail)
            }
        }
    }
}

/// The RCODE of the answer to a signature that did not check out (RFC 8945 §5.2: NOTAUTH, the
/// TSIG error saying why).
fn refusal_rcode(error: &TsigError) -> ResponseCode {
    match error {
        TsigError::Malformed(_) => ResponseCode::FormErr,
        TsigError::Store(_) => ResponseCode::ServFail,
        _ => ResponseCode::NotAuth,
    }
}

/// Counts an answer in the metrics.
fn count(opcode: OpCode, rcode: ResponseCode) {
    let opcode = match opcode {
        OpCode::Update => "update",
        OpCode::Query => "query",
        _ => "other",
    };
    let rcode = match u16::from(rcode) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "other",
    };
    crate::metrics::metrics()
        .dns_messages
        .get_or_create(&crate::metrics::DnsLabels { opcode, rcode })
        .inc();
}

/// The SOA record of `zone`, as pdns serves it.
fn soa_record(zone: &crate::model::zone::Zone) -> Record {
    let name = |text: &str| {
        Name::from_ascii(format!("{}.", text.trim_end_matches('.')))
            .unwrap_or_else(|_| Name::root())
    };
    let soa = SOA::new(
        name(zone.nameservers.first().map_or("", String::as_str)),
        name(&zone.hostmaster),
        zone.serial,
        i32::try_from(zone.refresh).unwrap_or(i32::MAX),
        i32::try_from(zone.retry).unwrap_or(i32::MAX),
        i32::try_from(zone.expire).unwrap_or(i32::MAX),
        zone.minimum,
    );
    Record::from_rdata(name(&zone.name), zone.ttl, RData::SOA(soa))
}

/// An answer to `message` with `rcode`: its ID, opcode and zone (question) section.
fn respond(message: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::new();
    response
        .set_id(message.id())
        .set_message_type(MessageType::Response)
        .set_op_code(message.op_code())
        .set_recursion_desired(message.recursion_desired())
        .set_response_code(rcode);
    response.add_queries(message.queries().iter().cloned());
    response
}

/// `response`, signed when the request was, as bytes.
fn finish(mut response: Message, verified: Option<&Verified>, now: u64) -> Option<Vec<u8>> {
    if let Some(verified) = verified {
        if let Err(error) = tsig::sign_response(&mut response, verified, now, false) {
            tracing::warn!(%error, "cannot sign an answer");
        }
    }
    match response.to_vec() {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::warn!(%error, "cannot write an answer");
            None
        }
    }
}

/// A bare header answering `request` (its ID and opcode) with `rcode`: for a message that
/// cannot be read.
fn header_only(request: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut header = [0_u8; 12];
    header[..2].copy_from_slice(&request[..2]);
    // QR set, the opcode kept, RD kept.
    header[2] = 0x80 | (request[2] & 0x79);
    header[3] = rcode.low();
    header.to_vec()
}
