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
        // On a blocking thread, the store's reads: the zones, then, for the few whose serial
        // some secondary was not told of, whether they are signed (their secondaries transfer
        // from pdns, which notifies them itself) and the key that signs NOTIFY.
        let (served, told) = (self.served.clone(), Arc::clone(&self.told));
        let read = tokio::task::spawn_blocking(move || {
            let zones = served.zones()?;
            let mut pending = Vec::new();
            {
                let mut told = told.lock().unwrap_or_else(|e| e.into_inner());
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
            let mut signed = HashMap::new();
            pending.retain(|(zone, _)| {
                !*signed
                    .entry(zone.id)
                    .or_insert_with(|| served.is_signed(&zone.name).unwrap_or(true))
            });
            let key = match &transfers.notify_key {
                Some(name) if !pending.is_empty() => {
                    let key = served.tsig_key(name)?;
                    if key.is_none() {
                        tracing::warn!(key = %name, "NOTIFY sent unsigned: [transfers] \
                            notify-key names no active TSIG key (certadns-ddns tsig list)");
                    }
                    key
                }
                _ => None,
            };
            Ok::<_, crate::served::StoreError>((pending, key))
        });
        let (pending, key) = match read.await {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => {
                tracing::warn!(%error, "NOTIFY: the zones could not be read");
                return;
            }
            Err(_) => return,
        };
        for (zone, target) in pending {
            let (source, key) = (self.source, key.clone());
            let in_flight = Arc::clone(&self.in_flight);
            tokio::spawn(async move {
                let Ok(_permit) = in_flight.acquire_owned().await else {
                    return;
                };
                let outcome = notify(&zone, target, source, key.as_ref(), ANSWER_WAIT).await;
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
/// [`ATTEMPTS`] times, waiting `first_wait` for the first answer and twice as long each time
/// after ([`ANSWER_WAIT`] but in tests).
async fn notify(
    zone: &Zone,
    target: SocketAddr,
    source: IpAddr,
    key: Option<&crate::model::tsig::TsigKey>,
    first_wait: Duration,
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
    let mut wait = first_wait;
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

#[cfg(test)]
mod test {
    use super::*;

    fn zone() -> Zone {
        Zone {
            id: 1,
            name: "dyn.example".into(),
            nameservers: vec!["ns1.dyn.example".into()],
            hostmaster: "hostmaster.dyn.example".into(),
            serial: 7,
            refresh: 10800,
            retry: 3600,
            expire: 604_800,
            minimum: 60,
            ttl: 3600,
            created_at: "t".into(),
            notified_serial: 0,
            also_notify: vec![],
        }
    }

    /// A secondary on loopback that answers the `answer_from`-th NOTIFY it gets (1: the
    /// first; 0: none) with `rcode`, after a decoy answer with another ID (SERVFAIL, so that
    /// taking it shows); how many it got.
    async fn secondary(
        answer_from: usize,
        rcode: ResponseCode,
    ) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0_u8; 4096];
            let mut got = 0;
            while let Ok(Ok((length, peer))) =
                tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await
            {
                got += 1;
                let request = Message::from_vec(&buffer[..length]).unwrap();
                assert_eq!(request.op_code(), OpCode::Notify);
                assert_eq!(request.answers()[0].record_type(), RecordType::SOA);
                if got == answer_from {
                    let mut answer = request.clone();
                    answer.set_message_type(MessageType::Response);
                    answer
                        .set_id(request.id().wrapping_add(1))
                        .set_response_code(ResponseCode::ServFail);
                    socket
                        .send_to(&answer.to_vec().unwrap(), peer)
                        .await
                        .unwrap();
                    answer.set_id(request.id()).set_response_code(rcode);
                    socket
                        .send_to(&answer.to_vec().unwrap(), peer)
                        .await
                        .unwrap();
                }
            }
            got
        });
        (address, task)
    }

    const WAIT: Duration = Duration::from_millis(20);
    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn a_notify_is_sent_until_answered_and_an_answer_with_another_id_is_no_answer() {
        let (target, got) = secondary(3, ResponseCode::NoError).await;
        let outcome = notify(&zone(), target, LOOPBACK, None, WAIT).await;
        assert!(matches!(outcome, Outcome::Acknowledged), "{outcome:?}");
        assert_eq!(
            got.await.unwrap(),
            3,
            "two unanswered sends, then the answered one"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_final_and_silence_ends_after_every_attempt() {
        let (target, got) = secondary(1, ResponseCode::NotAuth).await;
        let outcome = notify(&zone(), target, LOOPBACK, None, WAIT).await;
        assert!(
            matches!(outcome, Outcome::Refused(ResponseCode::NotAuth)),
            "{outcome:?}"
        );
        assert_eq!(got.await.unwrap(), 1, "not sent again");
        let (target, got) = secondary(0, ResponseCode::NoError).await;
        let outcome = notify(&zone(), target, LOOPBACK, None, WAIT).await;
        assert!(matches!(outcome, Outcome::Unanswered), "{outcome:?}");
        assert_eq!(got.await.unwrap(), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn nothing_listening_waits_out_each_attempt_instead_of_spinning() {
        // A port nothing listens on: each send brings an ICMP error back at once.
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = closed.local_addr().unwrap();
        drop(closed);
        let started = std::time::Instant::now();
        let outcome = notify(&zone(), target, LOOPBACK, None, WAIT).await;
        assert!(matches!(outcome, Outcome::Unanswered), "{outcome:?}");
        // 20 + 40 + 80 + 160 + 320 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }
}
