//! Zone transfers for secondaries: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, checked
//! against `[transfers]` (the client's address in `allow-from`, and a TSIG key of the zone's
//! when `require-tsig` says so or the request is signed).
//!
//! AXFR is one SQLite snapshot of the zone (`Served::each_zone_record`), read on a blocking
//! thread and packed into messages of at most [`MESSAGE_BYTES`] as it is read; the messages go
//! through a channel of [`MESSAGES_AHEAD`] to the connection, so that memory stays bounded
//! whatever the size of the zone and however slow the secondary. IXFR is the zone's history
//! from the served index (`served::history`): the steps from the secondary's serial, or the
//! whole zone when there is no history from there (RFC 1995 §4), or the SOA alone when the
//! secondary is current.
//!
//! Every message of a signed transfer is signed (RFC 8945 §5.3.1, `auth::tsig::StreamSigner`).

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{NULL, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::RDataParser as _;
use tokio::sync::mpsc;

use super::{DnsUpdates, message, respond, soa_record, unix_now};
use crate::auth::tsig::{StreamSigner, Verified};
use crate::model::rdata::{ServedType, StaticType};
use crate::model::tsig::TsigScope;
use crate::model::zone::{ServedRecord, Zone};
use crate::served::ZoneItem;
use crate::served::history::{Since, Step};

/// The most a message of a transfer holds, in bytes (before its TSIG record): well under
/// TCP's 65,535, as BIND and Knot pack them, so that one record too many never overflows.
pub const MESSAGE_BYTES: usize = 32_000;

/// Messages built ahead of what the secondary has read: the memory a transfer holds, whatever
/// the size of the zone.
pub const MESSAGES_AHEAD: usize = 4;

/// The answer to one message: most are one message; a transfer is many.
#[derive(Debug)]
pub enum Answer {
    /// One message.
    One(Vec<u8>),
    /// The messages of a transfer, in order, as they are built; the channel closes after
    /// the last.
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// What the request asks to transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The whole zone.
    Axfr,
    /// What changed since the secondary's serial.
    Ixfr(u32),
}

/// Whether `message` asks for a transfer, and which: AXFR, or IXFR with the serial of the
/// SOA in its authority section (RFC 1995 §3). An IXFR without that SOA is malformed.
pub(super) fn transfer_kind(message: &Message) -> Option<Result<Kind, ()>> {
    let [query] = message.queries() else {
        return None;
    };
    match query.query_type() {
        RecordType::AXFR => Some(Ok(Kind::Axfr)),
        RecordType::IXFR => Some(
            message
                .name_servers()
                .iter()
                .find_map(|record| match record.data() {
                    RData::SOA(soa) => Some(Kind::Ixfr(soa.serial())),
                    _ => None,
                })
                .ok_or(()),
        ),
        _ => None,
    }
}

impl DnsUpdates {
    /// The answer to a transfer request `message` of `kind` from `client` (over TCP, or UDP
    /// when `tcp` is false), signed by `verified`'s key if it was.
    pub(super) async fn transfer(
        &self,
        message: &Message,
        kind: Result<Kind, ()>,
        verified: Option<Verified>,
        client: IpAddr,
        tcp: bool,
    ) -> (Answer, ResponseCode) {
        let refuse = |rcode: ResponseCode, why: &str| {
            tracing::debug!(%client, %rcode, why, "zone transfer refused");
            let answer = super::finish(respond(message, rcode), verified.as_ref(), unix_now())
                .unwrap_or_default();
            (Answer::One(answer), rcode)
        };
        let Ok(kind) = kind else {
            return refuse(ResponseCode::FormErr, "IXFR without the secondary's SOA");
        };
        let query = &message.queries()[0];
        if query.query_class() != DNSClass::IN {
            return refuse(ResponseCode::Refused, "not class IN");
        }
        let transfers = self.sections.transfers.load();
        if !transfers
            .allow_from
            .iter()
            .any(|network| network.contains(&client))
        {
            return refuse(ResponseCode::Refused, "not in [transfers] allow-from");
        }
        let name = message::plain(query.name());
        let zone = match self
            .served
            .lookup(|view| Ok(view.zone_by_name(&name)?.map(std::borrow::Cow::into_owned)))
        {
            Ok(Some(zone)) => zone,
            Ok(None) => return refuse(ResponseCode::NotAuth, "not a zone of this server"),
            Err(error) => {
                tracing::error!(%error, "zone transfer not answered: store failure");
                return refuse(ResponseCode::ServFail, "store failure");
            }
        };
        match self.served.is_signed(&zone.name) {
            Ok(true) => {
                // What this listener has is the zone unsigned: a secondary serving it would
                // answer without the signatures the parent's DS asks for (bogus for every
                // validating resolver).
                tracing::info!(%client, zone = %zone.name,
                    "zone transfer refused: the zone is signed (pdns signs it live); secondaries \
                     of a signed zone transfer it from pdns (README, Secondaries)");
                return refuse(ResponseCode::Refused, "signed zone");
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "zone transfer not answered: store failure");
                return refuse(ResponseCode::ServFail, "store failure");
            }
        }
        match &verified {
            Some(verified) if !may_transfer(&verified.key.scope, zone.id) => {
                tracing::info!(%client, key = %verified.key.name, zone = %zone.name,
                    "zone transfer refused: the key is not a whole-zone key of this zone");
                return refuse(ResponseCode::Refused, "key not for this zone");
            }
            None if transfers.require_tsig => {
                return refuse(ResponseCode::Refused, "unsigned, and require-tsig is set");
            }
            _ => {}
        }
        if !tcp {
            // RFC 1995 §4: over UDP, the current SOA alone tells the secondary to ask over
            // TCP if it is behind. AXFR is TCP only (RFC 5936 §4.2).
            if kind == Kind::Axfr {
                return refuse(ResponseCode::FormErr, "AXFR over UDP");
            }
            let mut response = respond(message, ResponseCode::NoError);
            response.set_authoritative(true);
            response.add_answer(soa_record(&zone));
            let answer = super::finish(response, verified.as_ref(), unix_now()).unwrap_or_default();
            return (Answer::One(answer), ResponseCode::NoError);
        }
        let (sender, receiver) = mpsc::channel(MESSAGES_AHEAD);
        let mut packer = Packer::new(message, verified.map(StreamSigner::new), sender);
        let served = self.served.clone();
        tokio::task::spawn_blocking(move || {
            // IXFR: the zone row the history leads to (an update may have committed since
            // the request was checked), so that the steps end at the SOA sent.
            let (zone, since) = match kind {
                Kind::Axfr => (zone, Since::Unknown),
                Kind::Ixfr(serial) => match served.zone_history(&zone.name, serial) {
                    Ok(Some(found)) => found,
                    Ok(None) => {
                        packer.fail(ResponseCode::NotAuth);
                        return;
                    }
                    Err(error) => {
                        tracing::error!(%error, "zone transfer not answered: store failure");
                        packer.fail(ResponseCode::ServFail);
                        return;
                    }
                },
            };
            let how = match (&kind, &since) {
                (Kind::Axfr, _) => "AXFR",
                (Kind::Ixfr(_), Since::Current) => "IXFR (current)",
                (Kind::Ixfr(_), Since::Steps(_)) => "IXFR",
                (Kind::Ixfr(_), Since::Unknown) => "IXFR (whole zone)",
            };
            tracing::info!(%client, zone = %zone.name, how, "zone transfer");
            crate::metrics::metrics()
                .zone_transfers
                .get_or_create(&crate::metrics::TransferLabels { kind: how })
                .inc();
            let sent = match since {
                Since::Current => packer.push(soa_record(&zone)),
                Since::Steps(steps) => ixfr(&mut packer, &zone, &steps),
                Since::Unknown => axfr(&mut packer, &served, &zone.name),
            };
            if sent.is_continue() {
                packer.finish();
            }
        });
        (Answer::Stream(receiver), ResponseCode::NoError)
    }
}

/// Whether a request signed with a key of `scope` may transfer zone `zone_id`: an admin's key
/// for the whole zone. An account's key, or one for a subtree, changes some names; it does not
/// list a zone of everyone's names.
fn may_transfer(scope: &TsigScope, zone_id: i64) -> bool {
    matches!(scope, TsigScope::Zone { zone_id: id, subtree: None, .. } if *id == zone_id)
}

/// The zone from one snapshot: SOA, apex NS, every record, SOA (RFC 5936 §2.2).
fn axfr(packer: &mut Packer, served: &crate::served::Served, name: &str) -> ControlFlow<()> {
    let mut soa = None;
    let read = served.each_zone_record(name, |item| match item {
        ZoneItem::Zone(zone) => {
            let record = soa_record(&zone);
            soa = Some(record.clone());
            packer.push(record)?;
            zone.apex_records()
                .into_iter()
                .filter(|record| record.record_type != ServedType::Soa)
                .try_for_each(|record| packer.push_served(&record))
        }
        ZoneItem::Record(record) => packer.push_served(&record),
    });
    match (read, soa) {
        (Ok(Some(())), Some(soa)) => packer.push(soa),
        (Ok(_), _) => {
            // Removed since the request was checked.
            packer.fail(ResponseCode::NotAuth);
            ControlFlow::Break(())
        }
        (Err(error), _) => {
            tracing::error!(%error, "zone transfer cut short: store failure");
            packer.fail(ResponseCode::ServFail);
            ControlFlow::Break(())
        }
    }
}

/// The steps from the secondary's serial (RFC 1995 §4): the current SOA, then for each step
/// its old SOA, what went, its new SOA, what came; then the current SOA again.
fn ixfr(packer: &mut Packer, zone: &Zone, steps: &[Arc<Step>]) -> ControlFlow<()> {
    let soa_at = |serial: u32| {
        let mut record = soa_record(zone);
        if let RData::SOA(soa) = record.data() {
            let soa = SOA::new(
                soa.mname().clone(),
                soa.rname().clone(),
                serial,
                soa.refresh(),
                soa.retry(),
                soa.expire(),
                soa.minimum(),
            );
            record.set_data(RData::SOA(soa));
        }
        record
    };
    packer.push(soa_record(zone))?;
    for step in steps {
        packer.push(soa_at(step.from))?;
        step.removed
            .iter()
            .try_for_each(|record| packer.push_served(record))?;
        packer.push(soa_at(step.to))?;
        step.added
            .iter()
            .try_for_each(|record| packer.push_served(record))?;
    }
    packer.push(soa_record(zone))
}

/// A served record as DNS carries it; `None` for content that does not read back (logged:
/// the record is left out of the transfer rather than the transfer failed).
pub fn wire_record(record: &ServedRecord) -> Option<Record> {
    let name = Name::from_ascii(format!("{}.", record.name.trim_end_matches('.'))).ok()?;
    let data = match record.record_type {
        // hickory knows DHCID (49) by number only: its bytes, from base64.
        ServedType::Stored(StaticType::Dhcid) => {
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                record.content.split_whitespace().collect::<String>(),
            )
            .ok()?;
            Ok(RData::Unknown {
                code: RecordType::Unknown(49),
                rdata: NULL::with(bytes),
            })
        }
        other => other
            .as_str()
            .parse::<RecordType>()
            .map_err(|error| error.to_string())
            .and_then(|record_type| {
                RData::try_from_str(record_type, &record.content).map_err(|e| e.to_string())
            }),
    };
    match data {
        Ok(data) => Some(Record::from_rdata(name, record.ttl, data)),
        Err(error) => {
            tracing::warn!(name = %record.name, record_type = record.record_type.as_str(),
                %error, "a record left out of a zone transfer: its content does not read");
            None
        }
    }
}

/// The bytes a record may take in a message, at most (uncompressed): what decides when a
/// message is full without encoding each record twice.
fn size_bound(record: &ServedRecord) -> usize {
    record.name.len() + 2 + 10 + (record.content.len() + 8).max(16)
}

/// Packs records into the messages of one answer and sends each when full.
struct Packer {
    /// The request's ID and question, for every message.
    template: Message,
    signer: Option<StreamSigner>,
    sender: mpsc::Sender<Vec<u8>>,
    /// The message being filled, and its size bound so far.
    current: Message,
    bytes: usize,
}

impl Packer {
    fn new(request: &Message, signer: Option<StreamSigner>, sender: mpsc::Sender<Vec<u8>>) -> Self {
        let mut template = respond(request, ResponseCode::NoError);
        template.set_authoritative(true);
        let current = template.clone();
        Self {
            template,
            signer,
            sender,
            current,
            bytes: 12 + request.queries().iter().map(query_size).sum::<usize>(),
        }
    }

    /// Adds a served record; leaves it out if it does not read.
    fn push_served(&mut self, record: &ServedRecord) -> ControlFlow<()> {
        match wire_record(record) {
            Some(wire) => self.push_sized(wire, size_bound(record)),
            None => ControlFlow::Continue(()),
        }
    }

    /// Adds a record; `Break` once the secondary is gone.
    fn push(&mut self, record: Record) -> ControlFlow<()> {
        // SOA: two names of at most 255, and 20 bytes.
        let bound = record.name().len() + 12 + 512 + 20;
        self.push_sized(record, bound)
    }

    fn push_sized(&mut self, record: Record, bound: usize) -> ControlFlow<()> {
        if self.bytes + bound > MESSAGE_BYTES && !self.current.answers().is_empty() {
            self.send()?;
        }
        self.bytes += bound;
        self.current.add_answer(record);
        ControlFlow::Continue(())
    }

    /// Sends the message being filled and starts the next.
    fn send(&mut self) -> ControlFlow<()> {
        let mut message = std::mem::replace(&mut self.current, self.template.clone());
        self.bytes = 12
            + self
                .template
                .queries()
                .iter()
                .map(query_size)
                .sum::<usize>();
        // RFC 5936 §2.2.1: the question in the first message only, optionally; kept in the
        // first, left out of the rest as BIND and Knot do.
        self.template.take_queries();
        if let Some(signer) = &mut self.signer {
            if let Err(error) = signer.sign(&mut message, unix_now()) {
                tracing::warn!(%error, "cannot sign a zone transfer message");
                return ControlFlow::Break(());
            }
        }
        let bytes = match message.to_vec() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "cannot write a zone transfer message");
                return ControlFlow::Break(());
            }
        };
        match self.sender.blocking_send(bytes) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }

    /// Sends the last message.
    fn finish(mut self) {
        let _ = self.send();
    }

    /// Ends the transfer with `rcode` instead of the records (RFC 5936 §2.2: a message with an
    /// error ends it; the secondary keeps what it had).
    fn fail(&mut self, rcode: ResponseCode) {
        self.current = self.template.clone();
        self.current.set_response_code(rcode);
        let _ = self.send();
    }
}

/// The bytes a question takes.
fn query_size(query: &Query) -> usize {
    query.name().len() + 2 + 4
}
