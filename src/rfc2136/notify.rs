//! NOTIFY (RFC 1996): secondaries told of each new serial, so that they transfer at once
//! rather than at their next SOA refresh.
//!
//! Every `notify-interval` the notifier reads each zone's serial; a zone whose serial differs
//! from what a secondary was last told of gets one NOTIFY to it, so that a zone changing a
//! hundred times a second costs each secondary at most one transfer per interval (the
//! batching). The targets are `[transfers] notify` for every zone, and each zone's own
//! (`[transfers.zone-notify]`). A NOTIFY not answered within [`ANSWER_WAIT`] is sent again, up
//! to [`ATTEMPTS`] times, further apart each time (RFC 1996 §3.6); an answer with an error
//! (the secondary does not serve the zone, or refuses us) is logged and not retried for that
//! serial. At the start every zone is notified once: a secondary learns of what changed while
//! the service was down.
//!
//! Sent from a socket of its own on the listener's address, so that the secondary sees the
//! primary address it was configured with; signed with `notify-key` when set (RFC 8945).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{soa_record, unix_now};
use crate::config::{Live, Transfers};
use crate::model::zone::Zone;
use crate::served::Served;

/// How long a NOTIFY waits for its answer before it is sent again (doubling each time).
pub(super) const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How many times a NOTIFY is sent before the secondary is left to its SOA refresh.
pub(super) const ATTEMPTS: u32 = 5;

/// NOTIFY messages waiting for their answers at once (each holds a socket): the start, which
/// notifies every zone, must not take thousands of file descriptors.
const IN_FLIGHT: usize = 64;

/// The NOTIFY sender; see the module docs.
#[derive(Debug, Clone)]
pub struct Notifier {
    served: Served,
    transfers: Live<Transfers>,
    /// The address NOTIFY is sent from (the listener's, port chosen by the system).
    source: IpAddr,
    /// The serial each (zone, secondary) was last told of, or is being told of.
    told: Arc<Mutex<HashMap<(i64, SocketAddr), u32>>>,
    /// Bounds the NOTIFY messages in flight.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Notifier {
    /// Notifies the secondaries of `served`'s zones as `transfers` says, from `source`.
    pub fn new(served: Served, transfers: Live<Transfers>, source: IpAddr) -> Self {
        Self {
            served,
            transfers,
            source,
            told: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Sends one NOTIFY to each secondary whose zone has a serial it was not told of; each
    /// waits for its answer on a task of its own.
    pub async fn tick(&self) {
        let transfers = self.transfers.load_full();
        let served = self.served.clone();
        let zones = match tokio::task::spawn_blocking(move || served.zones()).await {
            Ok(Ok(zones)) => zones,
            Ok(Err(error)) => {
                tracing::warn!(%error, "NOTIFY: the zones could not be read");
                return;
            }
            Err(_) => return,
        };
        let mut pending = Vec::new();
        {
            let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
            let live: HashSet<i64> = zones.iter().map(|zone| zone.id).collect();
            told.retain(|(zone_id, _), _| live.contains(zone_id));
            for zone in &zones {
                for target in transfers.notify_addresses(&zone.name) {
                    if told.insert((zone.id, target), zone.serial) != Some(zone.serial) {
                        pending.push((zone.clone(), target));
                    }
                }
            }
        }
        // Signed zones are transferred from pdns, which notifies their secondaries itself.
        pending.retain(|(zone, _)| {
            !matches!(self.served.zone_keys(&zone.name),
                Ok(Some(keys)) if keys.iter().any(|key| key.active))
        });
        if pending.is_empty() {
            return;
        }
        let key = match &transfers.notify_key {
            Some(name) => match self.served.tsig_key(name) {
                Ok(Some(key)) => Some(key),
                Ok(None) => {
                    tracing::warn!(key = %name, "NOTIFY sent unsigned: [transfers] notify-key \
                        names no active TSIG key (certadns-ddns tsig list)");
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "NOTIFY sent unsigned: the key could not be read");
                    None
                }
            },
            None => None,
        };
        for (zone, target) in pending {
            let (source, key) = (self.source, key.clone());
            let in_flight = Arc::clone(&self.in_flight);
            tokio::spawn(async move {
                let Ok(_permit) = in_flight.acquire_owned().await else {
                    return;
                };
                let outcome = notify(&zone, target, source, key.as_ref()).await;
                let kind = match &outcome {
                    Outcome::Acknowledged => "acknowledged",
                    Outcome::Refused(_) => "refused",
                    Outcome::Unanswered => "unanswered",
                };
                crate::metrics::metrics()
                    .notifies
                    .get_or_create(&crate::metrics::TransferLabels { kind })
                    .inc();
                match outcome {
                    Outcome::Acknowledged => {
                        tracing::debug!(zone = %zone.name, %target, serial = zone.serial,
                            "NOTIFY acknowledged");
                    }
                    Outcome::Refused(rcode) => {
                        tracing::warn!(zone = %zone.name, %target, %rcode,
                            "NOTIFY refused by the secondary (is the zone configured there, with \
                             this server as its primary?)");
                    }
                    Outcome::Unanswered => {
                        tracing::warn!(zone = %zone.name, %target, attempts = ATTEMPTS,
                            "NOTIFY unanswered; the secondary will find the change at its SOA \
                             refresh");
                    }
                }
            });
        }
    }
}

/// How a NOTIFY ended.
#[derive(Debug)]
enum Outcome {
    Acknowledged,
    Refused(ResponseCode),
    Unanswered,
}

/// Sends the NOTIFY of `zone`'s serial to `target` until it is answered, at most
/// [`ATTEMPTS`] times.
async fn notify(
    zone: &Zone,
    target: SocketAddr,
    source: IpAddr,
    key: Option<&crate::model::tsig::TsigKey>,
) -> Outcome {
    let source = match (source, target) {
        // The listener's own family, or the system's choice when they differ.
        (source, target) if source.is_ipv4() == target.is_ipv4() => SocketAddr::new(source, 0),
        (_, target) if target.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        _ => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = match UdpSocket::bind(source).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, %source, "NOTIFY: no socket");
            return Outcome::Unanswered;
        }
    };
    if let Err(error) = socket.connect(target).await {
        tracing::debug!(%error, %target, "NOTIFY: cannot reach the secondary");
        return Outcome::Unanswered;
    }
    let id: u16 = rand::random();
    let mut wait = ANSWER_WAIT;
    let mut buffer = vec![0_u8; 4096];
    for _ in 0..ATTEMPTS {
        let Some(request) = notify_message(zone, id, key) else {
            return Outcome::Unanswered;
        };
        if socket.send(&request).await.is_ok() {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let length = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await
                {
                    Ok(Ok(length)) => length,
                    Ok(Err(_)) => {
                        // An ICMP error (nothing listens there yet): wait out the attempt
                        // as for silence, not retry at once.
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Err(_) => break,
                };
                let Ok(answer) = Message::from_vec(&buffer[..length]) else {
                    continue;
                };
                if answer.id() != id
                    || answer.message_type() != MessageType::Response
                    || answer.op_code() != OpCode::Notify
                {
                    continue;
                }
                return match answer.response_code() {
                    ResponseCode::NoError => Outcome::Acknowledged,
                    rcode => Outcome::Refused(rcode),
                };
            }
        } else {
            tokio::time::sleep(wait).await;
        }
        wait *= 2;
    }
    Outcome::Unanswered
}

/// The NOTIFY of `zone`'s current serial (RFC 1996 §3.7: the SOA in the answer section as a
/// hint), with ID `id`, signed with `key` if given.
fn notify_message(
    zone: &Zone,
    id: u16,
    key: Option<&crate::model::tsig::TsigKey>,
) -> Option<Vec<u8>> {
    let soa = soa_record(zone);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Notify)
        .set_authoritative(true);
    let mut query = Query::query(soa.name().clone(), RecordType::SOA);
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    message.add_answer(soa);
    if let Some(key) = key {
        if let Err(error) = crate::auth::tsig::sign_request(&mut message, key, unix_now()) {
            tracing::warn!(%error, "NOTIFY: cannot sign");
            return None;
        }
    }
    message.to_vec().ok()
}

/// Notifies every `interval` (the live `notify-interval`) until `stopped`.
pub async fn notify_until_stopped(notifier: Notifier, mut stopped: watch::Receiver<bool>) {
    loop {
        notifier.tick().await;
        let interval = notifier.transfers.load().notify_interval;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
