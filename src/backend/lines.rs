//! The line-JSON connector, shared by the unix socket and the TCP listener: one JSON object per
//! line each way, strictly one request in flight per connection, `initialize` first on every
//! connection (answered like any other request).
//!
//! pdns keeps a handful of these connections open (one per distributor thread, plus short
//! ones for AXFR and the zone cache) and waits on each answer, so each connection gets its own
//! thread doing blocking reads, SQLite and writes: no hop between runtimes on the hot path.
//! A connection is never closed from this side while its peer keeps it: pdns (and the relay)
//! reuse them for as long as they live. Under systemd each one is also in its file-descriptor
//! store (`handover.rs`): at a restart, the thread stops reading at the next request boundary
//! and leaves the connection open for the next process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Backend;
use super::protocol::{Query, Reply};
use crate::handover::{Handover, Kept};
use crate::inflight::{CONFIRM_PREFIX, CONFIRMED_PREFIX, Probe, RELAY_HELLO, Slot};

/// The suffix of a relay connection's name in systemd's store: the next process asks it too.
const RELAY_MARK: &str = "-relay";

/// Largest request line taken; pdns's are a few hundred bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Most connections served at once by one listener; pdns opens about five per instance.
const MAX_CONNECTIONS: usize = 256;

/// Most connections from one address at once, so that one peer cannot hold the listener:
/// a pdns host needs one per backend instance (distributor and receiver threads, the
/// communicator, one per API call for a moment), a few pdns behind one address a few times that.
const MAX_PER_PEER: usize = 64;

/// A connected socket of a line-JSON listener (unix or TCP).
pub(super) trait LineStream: Read + Write + AsFd + Send + Sized + 'static {
    /// `UnixStream::set_read_timeout` / `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
    /// A second handle on the same socket.
    fn try_clone(&self) -> std::io::Result<Self>;
    /// The peer's address, counted against [`MAX_PER_PEER`] (None: a unix socket, whose
    /// peers are all local).
    fn peer_ip(&self) -> Option<std::net::IpAddr>;
}

impl LineStream for std::os::unix::net::UnixStream {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn try_clone(&self) -> std::io::Result<Self> {
        Self::try_clone(self)
    }
}

impl LineStream for std::net::TcpStream {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer_addr().ok().map(|peer| peer.ip())
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn try_clone(&self) -> std::io::Result<Self> {
        Self::try_clone(self)
    }
}

/// Counts a listener's open connections and starts a thread for each new one.
#[derive(Debug, Clone)]
pub(super) struct ConnectionThreads {
    /// Connections open now (a watch, so that the handover can wait for zero).
    open: watch::Sender<usize>,
    /// Time a new connection has to send its first request; after that, none (pdns keeps
    /// its connections idle for as long as it likes, and must never find one closed under it).
    first_request_timeout: Duration,
    /// Where connections are stored across restarts.
    handover: Arc<Handover>,
    /// `unix` or `tcp`: the listener, in thread and connection names.
    kind: &'static str,
    /// Open connections per peer address (TCP).
    peers: Arc<PeerCounts>,
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct PeerCounts(Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PeerCounts {
    /// The counts, whether or not a holder panicked (they stay meaningful).
    fn counts(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ConnectionThreads {
    /// No connection yet; each new one must speak within `first_request_timeout`.
    pub(super) fn new(
        kind: &'static str,
        first_request_timeout: Duration,
        handover: Arc<Handover>,
    ) -> Self {
        Self {
            open: watch::Sender::new(0),
            first_request_timeout,
            handover,
            kind,
            peers: Arc::default(),
        }
    }

    /// Serves one new connection on a thread of its own; refuses it (closes it at once) when
    /// [`MAX_CONNECTIONS`] are open, or [`MAX_PER_PEER`] from its address.
    pub(super) fn spawn(&self, stream: impl LineStream, backend: &Backend) {
        if *self.open.borrow() >= MAX_CONNECTIONS {
            tracing::warn!(
                listener = self.kind,
                "backend: too many connections; closing the new one"
            );
            return;
        }
        if let Some(peer) = stream.peer_ip() {
            let peers = self.peers.counts();
            if peers.get(&peer).copied().unwrap_or(0) >= MAX_PER_PEER {
                tracing::warn!(
                    listener = self.kind,
                    %peer,
                    "backend: too many connections from this address; closing the new one"
                );
                return;
            }
        }
        let kept = self.handover.keep(self.kind, stream);
        self.start(kept, backend, Some(self.first_request_timeout));
    }

    /// Serves a connection the previous process handed over (systemd stored it as `name`): it
    /// has spoken before, so no first-request timeout.
    pub(super) fn resume(&self, name: String, stream: impl LineStream, backend: &Backend) {
        let kept = self.handover.resume(name, stream);
        self.start(kept, backend, None);
    }

    /// Starts the thread of `kept`.
    fn start<S: LineStream>(
        &self,
        kept: Kept<S>,
        backend: &Backend,
        first_request_timeout: Option<Duration>,
    ) {
        self.open.send_modify(|open| *open += 1);
        let peer = kept.get_ref().peer_ip();
        if let Some(peer) = peer {
            *self.peers.counts().entry(peer).or_default() += 1;
        }
        let leave = {
            let (open, peers) = (self.open.clone(), Arc::clone(&self.peers));
            move || {
                open.send_modify(|open| *open -= 1);
                if let Some(peer) = peer {
                    let mut peers = peers.counts();
                    if let Some(count) = peers.get_mut(&peer) {
                        *count -= 1;
                        if *count == 0 {
                            peers.remove(&peer);
                        }
                    }
                }
            }
        };
        let backend = backend.clone();
        let listener = self.kind;
        let left = leave.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{listener}-backend"))
            .spawn(move || {
                if let Err(error) = serve_lines(kept, &backend, first_request_timeout) {
                    tracing::debug!(%error, listener, "backend: connection ended with an error");
                }
                left();
            });
        if let Err(error) = spawned {
            leave();
            tracing::error!(%error, listener, "backend: cannot start a connection thread");
        }
    }

    /// After [`Handover::begin`]: waits (at most `limit`) until every connection thread has
    /// answered what it read and stopped, so that the process may exit.
    pub(super) async fn handed_over(&self, limit: Duration) {
        if !self.handover.is_enabled() {
            return;
        }
        let mut open = self.open.subscribe();
        if tokio::time::timeout(limit, open.wait_for(|open| *open == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                listener = self.kind,
                open = *open.borrow(),
                "backend connections still busy at the end of the shutdown grace period"
            );
        }
    }
}

/// Answers requests on one connection until the peer closes it (or, before its first
/// request, stays silent for `first_request_timeout`), or, once the connection is in
/// systemd's store and the handover has begun, until the next request boundary.
fn serve_lines<S: LineStream>(
    mut stream: Kept<S>,
    backend: &Backend,
    first_request_timeout: Option<Duration>,
) -> std::io::Result<()> {
    // Before its first request, a connection has `first_request_timeout` in all: a deadline,
    // not a timeout per read, so that a byte now and then does not keep it open.
    let mut first_deadline = first_request_timeout.map(|timeout| Instant::now() + timeout);
    let mut reader = BufReader::new(FirstRequest {
        stream: stream.get_ref().try_clone()?,
        deadline: first_deadline,
    });
    let handover = stream.handover().cloned();
    let probe = Arc::new(LineProbe {
        writer: Mutex::new(stream.get_ref().try_clone()?),
        relay: AtomicBool::new(stream.name().is_some_and(|name| name.ends_with(RELAY_MARK))),
    });
    let slot = backend.inflight().register(Box::new(Arc::clone(&probe)));
    let mut line = Vec::new();
    loop {
        // Stored: wait for the next request or the handover, whichever comes first. Bytes
        // already buffered are a request begun: it is answered first.
        if let Some(handover) = &handover {
            let remaining =
                first_deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if reader.buffer().is_empty()
                && !handover.wait_readable(reader.get_ref().stream.as_fd(), remaining)?
            {
                return Ok(());
            }
        }
        let request = read_request_line(&mut reader, &mut line)?;
        // Only a request ends the wait for the first one: blank lines are not requests.
        if first_deadline.is_some() && request == RequestLine::Request {
            first_deadline = None;
            reader.get_mut().deadline = None;
            reader.get_ref().stream.set_read_timeout(None)?;
        }
        let reply = match request {
            RequestLine::End => return Ok(()),
            RequestLine::TooLong => {
                probe.write(&reply_line(&Reply::refusal(
                    "certadns-ddns: request too long",
                )))?;
                return Ok(());
            }
            RequestLine::Blank => continue,
            RequestLine::Request if line.starts_with(CONFIRMED_PREFIX) => {
                confirmed(&slot, &line);
                continue;
            }
            RequestLine::Request if line.starts_with(RELAY_HELLO) => {
                slot.begin(None);
                probe.relay.store(true, Ordering::Release);
                stream.mark(RELAY_MARK);
                Reply::new(super::protocol::Outcome::Bool(true))
            }
            RequestLine::Request => answer_in_slot(backend, &line, Some(&slot)),
        };
        probe.write(&reply_line(&reply))?;
        slot.answered();
    }
}

/// The reply to one request line; a lookup's name goes to `slot` (when there is one) before
/// the store is read, anything else clears it.
fn answer_in_slot(backend: &Backend, line: &[u8], slot: Option<&Slot>) -> Reply {
    let query = Query::from_json(line);
    if let Some(slot) = slot {
        slot.begin(query.as_ref().ok().and_then(Query::lookup_name));
    }
    match query {
        Ok(query) => backend.handle(&query),
        Err(error) => {
            tracing::debug!(%error, "backend: undecodable request");
            Reply::refusal(format!("certadns-ddns: {error}"))
        }
    }
}

/// A relay's confirmation line: `slot` learns the number it confirms.
fn confirmed(slot: &Slot, line: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Confirmed {
        parameters: Question,
    }
    #[derive(serde::Deserialize)]
    struct Question {
        confirm: u64,
    }
    match serde_json::from_slice::<Confirmed>(line) {
        Ok(confirmed) => slot.confirmed(confirmed.parameters.confirm),
        Err(error) => tracing::debug!(%error, "backend: undecodable confirmation"),
    }
}

/// How a line connection confirms: by asking the relay at its other end, or from the kernel's
/// count of what the peer has not read yet.
struct LineProbe<S> {
    /// The connection's writing side: answers and questions, one at a time.
    writer: Mutex<S>,
    /// The peer is a relay that answers questions (it said so).
    relay: AtomicBool,
}

impl<S: Write> LineProbe<S> {
    /// Writes `bytes` whole.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write_all(bytes)
    }
}

impl<S: Write + AsFd + Send> Probe for Arc<LineProbe<S>> {
    fn ask(&self, number: u64) -> bool {
        if !self.relay.load(Ordering::Acquire) {
            return false;
        }
        let mut question = CONFIRM_PREFIX.to_vec();
        question.extend_from_slice(format!("{number}}}\n").as_bytes());
        self.write(&question).is_ok()
    }

    fn all_read(&self) -> Option<bool> {
        if self.relay.load(Ordering::Acquire) {
            return None;
        }
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // On a unix socket, nothing unsent means pdns has read it. On TCP, that its kernel has
        // it: as good for a relay, which reads at once (one that does not answer questions
        // is an old one).
        Some(crate::inflight::unsent(writer.as_fd()) == Some(0))
    }
}

/// A connection's reading side, which before the first request gives up at a deadline.
struct FirstRequest<S> {
    /// The connection.
    stream: S,
    /// Before the first request: when waiting for it ends.
    deadline: Option<Instant>,
}

impl<S: LineStream> Read for FirstRequest<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(remaining))?;
        }
        self.stream.read(buf)
    }
}

/// What [`read_request_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLine {
    /// The peer closed the connection.
    End,
    /// More than `MAX_LINE_BYTES` without a newline: the connection is answered and closed.
    TooLong,
    /// Only whitespace: skipped.
    Blank,
    /// A request, in the line buffer.
    Request,
}

/// Reads the next request line into `line` (cleared first), reading at most
/// `MAX_LINE_BYTES` + 1 bytes whatever the peer sends.
pub fn read_request_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<RequestLine> {
    line.clear();
    let read = reader
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', line)?;
    Ok(if read == 0 {
        RequestLine::End
    } else if line.len() > MAX_LINE_BYTES {
        RequestLine::TooLong
    } else if line.iter().all(u8::is_ascii_whitespace) {
        RequestLine::Blank
    } else {
        RequestLine::Request
    })
}

/// The reply to one request line.
pub fn answer_line(backend: &Backend, line: &[u8]) -> Reply {
    answer_in_slot(backend, line, None)
}

/// A reply as one line.
fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut bytes = reply.to_json();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn on_a_unix_socket_an_answer_counts_as_taken_in_once_the_peer_has_read_it() {
        let (ours, mut pdns) = std::os::unix::net::UnixStream::pair().unwrap();
        let probe = Arc::new(LineProbe {
            writer: Mutex::new(ours),
            relay: AtomicBool::new(false),
        });
        assert_eq!(probe.all_read(), Some(true), "nothing written");
        probe.write(b"{\"result\":false}\n").unwrap();
        assert_eq!(probe.all_read(), Some(false), "unread by pdns");
        assert!(!probe.ask(1), "no relay to ask");
        let mut read = [0_u8; 64];
        let _ = pdns.read(&mut read).unwrap();
        assert_eq!(probe.all_read(), Some(true));
        // A relay is asked instead, with a question after what was written.
        probe.relay.store(true, Ordering::Release);
        assert_eq!(probe.all_read(), None);
        assert!(probe.ask(5));
        let mut question = [0_u8; 64];
        let read = pdns.read(&mut question).unwrap();
        assert_eq!(&question[..read], b"{\"confirm\":5}\n");
    }
}
