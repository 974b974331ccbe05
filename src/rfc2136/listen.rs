//! The RFC 2136 listener's sockets: UDP, and TCP with two-byte length framing (RFC 1035
//! §4.2.2, RFC 7766), bounded like every other listener.
//!
//! The bounds, each for a client that would otherwise hold the service:
//! - a pace per client (an IPv4 address or an IPv6 /64): messages beyond it are dropped
//!   unanswered over UDP (an answer would make the listener a reflector) and end the
//!   connection over TCP; the pace state is an LRU of bounded size;
//! - at most `max-connections` TCP connections, `max-connections-per-client` of one client;
//! - a TCP connection must send each message within `header-read-timeout-secs`, and is closed
//!   after that long idle;
//! - at most [`MAX_IN_FLIGHT`] UDP messages answered at once (the rest are dropped, and the
//!   clients retry, as DNS clients do);
//! - UDP answers longer than 512 bytes go out truncated (TC), for the client to ask over TCP.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};

use super::{Answer, DnsUpdates};
use crate::net::{ClientCounts, client_of};

/// UDP messages answered at once.
pub(super) const MAX_IN_FLIGHT: usize = 256;

/// Clients whose pace is remembered; the least recent are forgotten first (a forgotten client
/// starts with a full allowance again).
const PACE_CLIENTS: usize = 65_536;

/// The largest answer sent whole over UDP without EDNS (RFC 1035 §4.2.1).
const UDP_ANSWER_BYTES: usize = 512;

/// How the listener is bounded.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Messages a second one client may send (twice that in a burst); 0: no pace.
    pub pace: u32,
    /// TCP connections at once.
    pub max_connections: usize,
    /// TCP connections of one client; 0: no cap.
    pub max_connections_per_client: usize,
    /// Time allowed for each message of a TCP connection, and the idle time before it is
    /// closed.
    pub read_timeout: Duration,
}

/// The listener's sockets, bound by the daemon.
#[derive(Debug)]
pub struct DnsListener {
    /// The UDP socket.
    pub udp: UdpSocket,
    /// The TCP listener, on the same address.
    pub tcp: TcpListener,
}

/// A token bucket per client.
#[derive(Debug)]
struct Pace {
    /// Tokens a second; 0: no pace.
    rate: u32,
    /// Allowance left per client, and when it was last filled.
    clients: Mutex<lru::LruCache<IpAddr, (f64, Instant)>>,
}

impl Pace {
    fn new(rate: u32) -> Self {
        Self {
            rate,
            clients: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(PACE_CLIENTS).expect("not zero"),
            )),
        }
    }

    /// Whether `peer` may send one more message now.
    fn admit(&self, peer: IpAddr) -> bool {
        if self.rate == 0 {
            return true;
        }
        let rate = f64::from(self.rate);
        let burst = rate * 2.0;
        let now = Instant::now();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, filled) = clients.get_or_insert_mut(client_of(peer), || (burst, now));
        *tokens = (*tokens + now.duration_since(*filled).as_secs_f64() * rate).min(burst);
        *filled = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether `stopped` says stop (or its sender is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Serves `listener` with `updates` until `stopped` turns true; TCP connections finish the
/// message they are answering.
pub async fn serve(
    listener: DnsListener,
    updates: DnsUpdates,
    options: ListenOptions,
    stopped: watch::Receiver<bool>,
) {
    let pace = Arc::new(Pace::new(options.pace));
    let udp = tokio::spawn(serve_udp(
        Arc::new(listener.udp),
        updates.clone(),
        Arc::clone(&pace),
        stopped.clone(),
    ));
    serve_tcp(listener.tcp, updates, options, pace, stopped).await;
    let _ = udp.await;
}

/// The UDP loop.
async fn serve_udp(
    socket: Arc<UdpSocket>,
    updates: DnsUpdates,
    pace: Arc<Pace>,
    mut stopped: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buffer = vec![0_u8; 65_535];
    loop {
        let (length, peer) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors of earlier answers surface here on some systems.
                    tracing::debug!(%error, "DNS UDP receive failed");
                    continue;
                }
            },
            () = stop_requested(&mut stopped) => break,
        };
        if !pace.admit(peer.ip()) {
            tracing::debug!(%peer, "DNS message over the client's pace: dropped");
            continue;
        }
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            tracing::debug!(%peer, "DNS messages in flight at the limit: dropped");
            continue;
        };
        let request = buffer[..length].to_vec();
        let (socket, updates) = (Arc::clone(&socket), updates.clone());
        tokio::spawn(async move {
            if let Some(answer) = updates.answer(&request, peer.ip()).await {
                let answer = fit_udp(answer);
                if let Err(error) = socket.send_to(&answer, peer).await {
                    tracing::debug!(%peer, %error, "DNS UDP answer not sent");
                }
            }
            drop(permit);
        });
    }
}

/// `answer` as UDP carries it: whole up to 512 bytes, else its header alone with TC set.
fn fit_udp(answer: Vec<u8>) -> Vec<u8> {
    if answer.len() <= UDP_ANSWER_BYTES {
        return answer;
    }
    let mut header = answer[..12].to_vec();
    header[2] |= 0x02;
    header[4..12].fill(0);
    header
}

/// The TCP accept loop.
async fn serve_tcp(
    listener: TcpListener,
    updates: DnsUpdates,
    options: ListenOptions,
    pace: Arc<Pace>,
    mut stopped: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let counts = Arc::new(ClientCounts::default());
    let mut open = Vec::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "DNS TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_requested(&mut stopped) => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!(%peer, "DNS TCP connections at the limit; closing");
            continue;
        };
        let slot = if options.max_connections_per_client > 0 {
            match counts.take(client_of(peer.ip()), options.max_connections_per_client) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "too many DNS TCP connections from this client");
                    continue;
                }
            }
        } else {
            None
        };
        let (updates, pace, stopped) = (updates.clone(), Arc::clone(&pace), stopped.clone());
        let timeout = options.read_timeout;
        open.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
        open.push(tokio::spawn(async move {
            connection(stream, peer, &updates, &pace, timeout, stopped).await;
            drop((permit, slot));
        }));
    }
    for task in open {
        let _ = task.await;
    }
}

/// One TCP connection: messages answered in order until the client closes it, goes idle,
/// exceeds its pace, or the service stops.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    updates: &DnsUpdates,
    pace: &Pace,
    timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    loop {
        let mut length = [0_u8; 2];
        let read = tokio::select! {
            read = tokio::time::timeout(timeout, stream.read_exact(&mut length)) => read,
            () = stop_requested(&mut stopped) => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut request = vec![0_u8; usize::from(u16::from_be_bytes(length))];
        if !matches!(
            tokio::time::timeout(timeout, stream.read_exact(&mut request)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        if !pace.admit(peer.ip()) {
            tracing::debug!(%peer, "DNS messages over the client's pace: closing");
            return;
        }
        match updates.answer_tcp(&request, peer.ip()).await {
            None => continue,
            Some(Answer::One(answer)) => {
                if !send(&mut stream, &answer, timeout).await {
                    return;
                }
            }
            Some(Answer::Stream(mut messages)) => loop {
                // Each message as it is built; a secondary that stops reading for `timeout`
                // ends the transfer (and the snapshot it holds open).
                let next = tokio::select! {
                    next = messages.recv() => next,
                    () = stop_requested(&mut stopped) => return,
                };
                let Some(message) = next else {
                    break;
                };
                if !send(&mut stream, &message, timeout).await {
                    return;
                }
            },
        }
    }
}

/// Writes `message` with its two-byte length within `timeout`: whether it was.
async fn send(stream: &mut TcpStream, message: &[u8], timeout: Duration) -> bool {
    let Ok(length) = u16::try_from(message.len()) else {
        return false;
    };
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    matches!(
        tokio::time::timeout(timeout, stream.write_all(&framed)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_pace_admits_a_burst_then_holds_a_client_and_not_its_neighbour() {
        let pace = Pace::new(5);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..20).filter(|_| pace.admit(client)).count();
        assert_eq!(admitted, 10, "twice the rate in a burst");
        assert!(pace.admit("192.0.2.2".parse().unwrap()));
        // An IPv6 client is its /64.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..10 {
            assert!(pace.admit(v6));
        }
        assert!(!pace.admit("2001:db8::ffff".parse().unwrap()));
        assert!(Pace::new(0).admit(client));
    }

    #[test]
    fn long_udp_answers_go_out_truncated() {
        let mut long = vec![0_u8; 600];
        long[..12].copy_from_slice(&[0x12, 0x34, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
        let fitted = fit_udp(long);
        assert_eq!(fitted.len(), 12);
        assert_eq!(fitted[2] & 0x02, 0x02);
        assert_eq!(&fitted[..2], &[0x12, 0x34]);
        assert_eq!(fit_udp(vec![1; 40]).len(), 40);
    }
}
