//! The one HTTP/1.1 accept loop: connection cap, allow list, header timeout, head-size cap,
//! graceful drain; and the allow list the backend's other network listener shares.
//!
//! Knows nothing of what it serves: it hands each request and its TCP peer to a handler.
//! HTTP/1 only, because every dyndns2 client (and pdns's HTTP connector) speaks HTTP/1.x.
//!
//! Connections are always kept alive between requests. pdns's HTTP connector depends on it:
//! before reusing a connection it waits 1 ms for a sign that the server closed it, and when
//! our close arrives later than that it writes its next request into a dead connection and
//! fails the query (or, in its communicator thread, exits). So a listener serving pdns never
//! closes a connection by itself: no header timeout once the first byte came (`header_read_timeout:
//! None`), only TCP keepalive to notice a peer that vanished.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::handover::{Gated, Handover, Kept};
use crate::inflight::{Answering, ConnectionSlot, InFlight, TcpUnread};

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for each request head to arrive, which also bounds idle keep-alive; None
    /// for no limit (a listener serving pdns must never close an idle connection itself).
    pub header_read_timeout: Option<Duration>,
    /// Time allowed from accepting a connection to its first byte; None for no limit.
    pub first_byte_timeout: Option<Duration>,
    /// Largest request head, in bytes (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// How long in-flight requests may take after shutdown is asked.
    pub shutdown_grace: Duration,
    /// Only these peers are served; others are closed as soon as accepted. None: everyone.
    pub allow_from: Option<Arc<AllowList>>,
    /// Send TCP keepalive probes on idle connections, so that a peer gone without a word
    /// (host down, network cut) frees its connection.
    pub tcp_keepalive: bool,
    /// At most this many connections open at once from one client (an IPv4 address, or an
    /// IPv6 /64: one subscriber's network); further ones are closed as soon as accepted.
    pub per_client: Option<PerClientLimit>,
    /// The listener's name in the metrics (`updates`, `backend`, `metrics`).
    pub name: &'static str,
    /// Keep connections across restarts (in systemd's store when it has one, see
    /// `handover.rs`); none: connections close at shutdown after their request.
    pub handover: Option<Arc<Handover>>,
    /// Each connection keeps a slot here, carried in its requests' extensions, so that a
    /// purge waits for its answers (the backend's, see `inflight.rs`); none: no slots.
    pub inflight: Option<Arc<InFlight>>,
}

impl ServerOptions {
    /// The update listener's options, from `[listeners]`; `trusted_proxies` are exempt from
    /// the per-client cap.
    pub fn for_updates(listeners: &crate::config::Listeners, trusted_proxies: Networks) -> Self {
        Self {
            max_connections: listeners.max_connections,
            header_read_timeout: Some(listeners.header_read_timeout),
            first_byte_timeout: Some(listeners.first_byte_timeout),
            max_header_bytes: listeners.max_header_bytes,
            shutdown_grace: listeners.shutdown_grace,
            allow_from: None,
            tcp_keepalive: false,
            per_client: (listeners.max_connections_per_client > 0).then(|| PerClientLimit {
                limit: listeners.max_connections_per_client,
                exempt: trusted_proxies,
            }),
            name: "updates",
            handover: None,
            inflight: None,
        }
    }
}

/// The per-client connection cap of a listener, and the peers exempt from it.
#[derive(Debug, Clone)]
pub struct PerClientLimit {
    /// Connections one client may hold open.
    pub limit: usize,
    /// Peers never capped: reverse proxies (`trusted-proxies`), which carry every client
    /// (fairness among those is the proxy's job, e.g. nginx `limit_conn`).
    pub exempt: Networks,
}

/// A list of networks that a configuration reload (SIGHUP) replaces while listeners read it:
/// each check sees the old list or the new one, whole. Cheap to clone (the clones share it).
#[derive(Debug, Clone)]
pub struct Networks(Arc<arc_swap::ArcSwap<Vec<IpNet>>>);

impl Networks {
    /// The list `networks`.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(networks)))
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address counts as its IPv4
    /// address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.load().iter().any(|network| network.contains(&ip))
    }

    /// Puts `networks` in place of the list, for every clone.
    pub fn replace(&self, networks: Vec<IpNet>) {
        self.0.store(Arc::new(networks));
    }
}

/// Open connections per client of one listener.
#[derive(Debug, Default)]
pub struct ClientCounts {
    /// Count by client (see [`client_of`]); an entry leaves when its count reaches zero.
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One open connection of a client; counted until dropped.
pub struct ClientSlot {
    /// The counts.
    counts: Arc<ClientCounts>,
    /// The client.
    client: IpAddr,
}

impl ClientCounts {
    /// A slot for `client`, unless it already holds `limit` connections.
    pub fn take(self: &Arc<Self>, client: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: Arc::clone(self),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Who a peer counts as for the per-client cap: its IPv4 address, or its IPv6 /64 (a
/// subscriber gets a /64 or more, and can pick any address in it).
pub fn client_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1_u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The networks a listener serves, and a refusal log that cannot be flooded.
#[derive(Debug)]
pub struct AllowList {
    /// The allowed networks (replaced by a reload).
    networks: Networks,
    /// What the listener is, for the log (`backend`).
    listener: &'static str,
    /// The second (Unix time) of the last refusal logged.
    last_logged: AtomicU64,
    /// Refusals not logged since then.
    unlogged: AtomicU64,
}

impl AllowList {
    /// Serves peers in `networks`; `listener` names the listener in log lines.
    pub fn new(networks: Vec<IpNet>, listener: &'static str) -> Self {
        Self {
            networks: Networks::new(networks),
            listener,
            last_logged: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether `peer` may connect (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn permits(&self, peer: IpAddr) -> bool {
        self.networks.contains(peer)
    }

    /// Serves peers in `networks` from now on; connections open stay.
    pub fn replace(&self, networks: Vec<IpNet>) {
        self.networks.replace(networks);
    }

    /// Checks `peer`; a refusal is logged at warn, at most one line a second (the line says
    /// how many were refused since the last one), so a flood of refused connections cannot
    /// flood the log.
    pub fn check(&self, peer: SocketAddr) -> bool {
        if self.permits(peer.ip()) {
            return true;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let last = self.last_logged.load(Ordering::Relaxed);
        if now > last
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let also = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                %peer,
                listener = self.listener,
                refused_since_last_line = also,
                "connection refused: the peer is not in backend-allow-from"
            );
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
        }
        false
    }
}

/// Prepares an accepted TCP connection: no Nagle delay on small answers, and keepalive
/// probes when asked (an idle connection of a peer that vanished is closed after about
/// 90 s of silence: 60 s idle, then 3 probes 10 s apart).
pub(crate) fn tune_stream(stream: &TcpStream, tcp_keepalive: bool) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    if tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%error, "could not set TCP keepalive");
        }
    }
}

/// Serves HTTP on `listener`, and on the connections a previous process handed over
/// (`inherited`, with a [`ServerOptions::handover`]), until `shutdown` turns true; then stops
/// accepting and waits up to the grace period for open connections to finish their current
/// request (and, with a handover, to stop reading).
pub async fn serve_http<H, F>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    inherited: Vec<(String, std::os::fd::OwnedFd)>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let client_counts = Arc::new(ClientCounts::default());
    // Open connections: the shutdown waits for none.
    let (open, _) = watch::channel(0_usize);
    let connection = Connection {
        options: options.clone(),
        stop: shutdown.clone(),
        open: &open,
    };
    if let Some(handover) = &options.handover {
        for (name, fd) in inherited {
            let stream = std::net::TcpStream::from(fd);
            let resumed = stream.set_nonblocking(true).and_then(|()| {
                let peer = stream.peer_addr()?;
                Ok((TcpStream::from_std(stream)?, peer))
            });
            match resumed {
                Ok((stream, peer))
                    if options
                        .allow_from
                        .as_ref()
                        .is_none_or(|allow| allow.check(peer)) =>
                {
                    let kept = handover.resume(name, stream);
                    // Counted like any other while there is room (never refused: pdns holds it).
                    let permit = Arc::clone(&permits).try_acquire_owned().ok();
                    connection.spawn(kept, peer, permit, None, handler.clone(), false);
                }
                Ok((stream, _)) => drop(handover.resume(name, stream)),
                Err(error) => {
                    tracing::debug!(%error, "a handed-over connection is gone");
                    handover.remove(&name);
                }
            }
        }
    }
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stop_requested(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_requested(&mut shutdown) => break,
        };
        if let Some(allow_from) = &options.allow_from {
            if !allow_from.check(peer) {
                continue;
            }
        }
        let slot = match &options.per_client {
            Some(cap) if !cap.exempt.contains(peer.ip()) => {
                match client_counts.take(client_of(peer.ip()), cap.limit) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(%peer, "too many connections from this client; closing");
                        continue;
                    }
                }
            }
            _ => None,
        };
        tracing::debug!(%peer, "connection accepted");
        tune_stream(&stream, options.tcp_keepalive);
        let kept = match &options.handover {
            Some(handover) => handover.keep("http", stream),
            None => Kept::plain(stream),
        };
        connection.spawn(kept, peer, Some(permit), slot, handler.clone(), true);
    }
    drop(listener);
    let mut open = open.subscribe();
    let drained = async move {
        // The guard `wait_for` returns is not `Send`: dropped here.
        let _ = open.wait_for(|open| *open == 0).await.map(|_| ());
    };
    tokio::select! {
        () = drained => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
    }
}

/// What each connection of one listener is served with.
struct Connection<'a> {
    /// The listener's options.
    options: ServerOptions,
    /// Turns true when the listener stops: connections not kept for a handover then finish
    /// their request and close.
    stop: watch::Receiver<bool>,
    /// Counts the open ones.
    open: &'a watch::Sender<usize>,
}

impl Connection<'_> {
    /// Serves `kept` from `peer` on a task of its own. `fresh`: just accepted, so it must
    /// speak within the first-byte timeout (a handed-over one has spoken before).
    fn spawn<H, F>(
        &self,
        kept: Kept<TcpStream>,
        peer: SocketAddr,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        slot: Option<ClientSlot>,
        handler: H,
        fresh: bool,
    ) where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        // Told when the first request has been read (see the drain below).
        let first_request = Arc::new(tokio::sync::Notify::new());
        let told = Arc::clone(&first_request);
        let answers = self.options.inflight.as_ref().and_then(|inflight| {
            let fd = std::os::fd::AsFd::as_fd(kept.get_ref())
                .try_clone_to_owned()
                .ok()?;
            Some(inflight.register(Box::new(TcpUnread(fd))))
        });
        let in_requests = answers.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            told.notify_one();
            if let Some(slot) = &in_requests {
                request
                    .extensions_mut()
                    .insert(ConnectionSlot(Arc::clone(slot)));
            }
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(request, peer).await) }
        });
        let first_byte_timeout = self.options.first_byte_timeout.filter(|_| fresh);
        let builder = {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(self.options.header_read_timeout)
                .max_buf_size(self.options.max_header_bytes)
                .keep_alive(true);
            builder
        };
        let open = crate::metrics::OpenConnection::new(self.options.name);
        let grace = self.options.shutdown_grace;
        let handover = kept.handover().cloned();
        let counted = Counted::new(self.open);
        let Some(handover) = handover else {
            let mut stop = self.stop.clone();
            // How long a connection accepted just before the stop may take to send its first
            // request: it is answered (with `Connection: close`), never closed unanswered.
            let first_request_limit = first_byte_timeout
                .or(self.options.header_read_timeout)
                .unwrap_or(grace)
                .min(grace);
            tokio::spawn(async move {
                let stream = kept;
                // hyper's header timeout, when set, runs from accept; without it, this bounds
                // how long a connection may be held open without a word.
                if let Some(limit) = first_byte_timeout {
                    if !first_byte_within(stream.get_ref(), limit).await {
                        tracing::debug!(%peer, "no request within the first-byte timeout; closing");
                        return;
                    }
                }
                let connection = builder
                    .serve_connection(TokioIo::new(Answering::new(stream, answers)), service);
                tokio::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = stop_requested(&mut stop) => {
                        // hyper's graceful shutdown closes a connection it has read nothing
                        // from yet, even with the request waiting in the kernel: first let
                        // it read the request (a client that connected just before the stop).
                        let read_first = tokio::select! {
                            ended = connection.as_mut() => Some(ended),
                            () = first_request.notified() => None,
                            () = tokio::time::sleep(first_request_limit) => None,
                        };
                        match read_first {
                            Some(ended) => ended,
                            None => {
                                connection.as_mut().graceful_shutdown();
                                connection.await
                            }
                        }
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                drop((slot, permit, open, counted));
            });
            return;
        };

        tokio::spawn(async move {
            if let Some(limit) = first_byte_timeout {
                tokio::select! {
                    spoke = first_byte_within(kept.get_ref(), limit) => {
                        if !spoke {
                            tracing::debug!(%peer, "no request within the first-byte timeout; closing");
                            drop((kept, counted));
                            return;
                        }
                    }
                    // Nothing read yet: the next process reads it.
                    () = handover.wait() => {
                        drop((kept, counted));
                        return;
                    }
                }
            }
            let (gated, gate) = Gated::new(kept);
            // Boxed, so that it can be dropped (and the connection with it) before the count
            // says it is gone.
            let mut connection = Box::pin(
                builder.serve_connection(TokioIo::new(Answering::new(gated, answers)), service),
            );
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                () = handover.wait() => {
                    // Answer what was read; then the gate holds every further read back.
                    if gate.owes() {
                        tokio::select! {
                            ended = connection.as_mut() => Some(ended),
                            () = gate.parked() => None,
                            () = tokio::time::sleep(grace) => {
                                tracing::warn!(%peer, "a request still unanswered at the end of the shutdown grace period");
                                None
                            }
                        }
                    } else {
                        None
                    }
                }
            };
            if let Some(Err(error)) = ended {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            // Dropped after the handover began, the connection stays open for the next
            // process; before it, it is shut down and taken out of systemd's store.
            drop(connection);
            drop((slot, permit, open, counted));
        });
    }
}

/// One open connection in a listener's count (which the shutdown waits to see at zero),
/// until dropped.
struct Counted(watch::Sender<usize>);

impl Counted {
    /// Counts one more in `open`.
    fn new(open: &watch::Sender<usize>) -> Self {
        open.send_modify(|open| *open += 1);
        Self(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open -= 1);
    }
}

/// Whether `stream` sends its first byte (or closes) within `limit`. `peek` waits for real
/// data; `readable` may wake early.
async fn first_byte_within(stream: &TcpStream, limit: Duration) -> bool {
    let mut first = [0_u8; 1];
    tokio::time::timeout(limit, stream.peek(&mut first))
        .await
        .is_ok()
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await of the caller.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        let counts = Arc::new(ClientCounts::default());
        let held: Vec<_> = (0..3)
            .map(|_| counts.take(ip("192.0.2.7"), 3).unwrap())
            .collect();
        assert!(counts.take(ip("192.0.2.7"), 3).is_none());
        assert!(counts.take(ip("192.0.2.8"), 3).is_some());
        drop(held);
        assert!(counts.take(ip("192.0.2.7"), 3).is_some());
        assert_eq!(
            counts.open.lock().unwrap().len(),
            0,
            "entries leave at zero"
        );
    }
}
