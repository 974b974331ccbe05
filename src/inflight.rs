//! Answers pdns may not have taken in yet, so that a cache purge is never overtaken by one.
//!
//! pdns caches what the backend answers. A lookup read before a commit and still on its way
//! when the commit's purge reaches pdns (in a socket buffer, on a slow link, in the relay) would
//! be cached after the purge: the old address served for the cache TTL after `good`. pdns never
//! pipelines, so the one fact that holds on every link is the order on each connection: what
//! pdns sends next on it, it sends after it has taken in (and cached) the previous answer.
//!
//! So each backend connection keeps a [`Slot`]: the name of its last lookup and whether pdns
//! has confirmed taking the answer in. Before a purge, [`InFlight::settle`] waits until every
//! answer for the purged names that was read or sent before it is confirmed:
//! * by pdns's next request on that connection;
//! * on a relay connection, by the relay: it is asked (a `{"confirm":N}` line after the
//!   answer, in order on the connection), and answers once pdns has read everything it was
//!   given (`{"method":"certadnsConfirmed",...}`);
//! * on a unix socket, by the kernel: nothing left unread by pdns (`SIOCOUTQ` is zero), and
//!   then pdns's next request or [`READ_GRACE`] more (read is not yet cached: pdns caches once
//!   its answer is built, and on a loaded machine its thread can wait for a CPU in between).
//!
//! A lookup marks its slot before it reads the store, and a purge looks at the slots after the
//! commit, so a lookup that read the old data is always seen. The wait is bounded
//! ([`SETTLE_LIMIT`]); it costs the update path nothing when no answer for the name is on its
//! way (most updates), and one trip to the relay and back when one is.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::model::is_within;

/// The longest a purge waits for the answers on their way (a relay that never confirms, a link
/// that went away): then it purges anyway.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// How often a slot that can only be polled (the kernel's unread count) is looked at again.
const POLL_INTERVAL: Duration = Duration::from_micros(500);

/// After the kernel says pdns has read an answer, how long a purge still waits for pdns's next
/// request on that connection before it takes the answer as cached.
pub const READ_GRACE: Duration = Duration::from_millis(20);

/// Longest name kept (a DNS name in text is at most 253 bytes, plus a final dot).
const MAX_NAME: usize = 255;

/// How a relay announces itself on a new connection: it answers confirmation questions
/// (below). Answered `true`; a backend before this one answers `false` (unknown method).
pub const RELAY_HELLO: &[u8] = br#"{"method":"certadnsRelay","parameters":{"confirms":1}}"#;

/// The start of a relay's confirmation line: `{"method":"certadnsConfirmed","parameters":
/// {"confirm":N}}`, the question it answers as its parameters. Never answered.
pub const CONFIRMED_PREFIX: &[u8] = br#"{"method":"certadnsConfirmed","parameters":"#;

/// The start of the question to a relay: `{"confirm":N}`, N the number of the request whose
/// answer (and everything before it) pdns must have taken in.
pub const CONFIRM_PREFIX: &[u8] = br#"{"confirm":"#;

/// How a connection can prove that pdns took in what was written to it.
pub trait Probe: Send + Sync {
    /// Asks the peer to confirm everything written so far, in order after it; the answer comes
    /// back to [`Slot::confirmed`] with the same number. False when this connection cannot.
    fn ask(&self, number: u64) -> bool;
    /// Whether the peer has read everything written to it, when the connection can tell.
    fn all_read(&self) -> Option<bool>;
}

/// A TCP connection's probe (pdns's HTTP connector): nothing unacknowledged means pdns's
/// kernel has the answer, and pdns, waiting for it, reads it at once.
#[derive(Debug)]
pub struct TcpUnread(pub std::os::fd::OwnedFd);

impl Probe for TcpUnread {
    fn ask(&self, _: u64) -> bool {
        false
    }
    fn all_read(&self) -> Option<bool> {
        Some(unsent(std::os::fd::AsFd::as_fd(&self.0)) == Some(0))
    }
}

/// What the kernel holds of a socket's writes that the peer has not read (unix) or
/// acknowledged (TCP): `SIOCOUTQ`. None when the call fails.
pub fn unsent(fd: std::os::fd::BorrowedFd<'_>) -> Option<usize> {
    use std::os::fd::AsRawFd as _;
    let mut unsent: nix::libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; `fd` is open for the call.
    let done = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCOUTQ, &raw mut unsent) };
    (done == 0).then(|| usize::try_from(unsent).unwrap_or(0))
}

/// A connection's slot, carried in the extensions of each HTTP request on it (`net.rs` puts
/// it there, the backend's HTTP service marks its lookups in it).
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<Slot>);

/// An HTTP connection's stream that tells its slot when an answer has gone out: hyper writes
/// an answer in bursts ended by `poll_flush`, so "flushed after a write" is "answered".
pub struct Answering<IO> {
    /// The stream.
    io: IO,
    /// The slot, when the listener keeps them.
    slot: Option<Arc<Slot>>,
    /// Bytes written since the last flush.
    wrote: bool,
}

impl<IO> Answering<IO> {
    /// Wraps `io`; `slot` is told of every answer.
    pub fn new(io: IO, slot: Option<Arc<Slot>>) -> Self {
        Self {
            io,
            slot,
            wrote: false,
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Answering<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Answering<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(written, std::task::Poll::Ready(Ok(count)) if count > 0) {
            self.wrote = true;
        }
        written
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(written, std::task::Poll::Ready(Ok(count)) if count > 0) {
            self.wrote = true;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let flushed = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        if matches!(flushed, std::task::Poll::Ready(Ok(()))) && std::mem::take(&mut self.wrote) {
            if let Some(slot) = &self.slot {
                slot.answered();
            }
        }
        flushed
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Every backend connection's slot. Cheap to share.
#[derive(Default)]
pub struct InFlight {
    /// The slots of open connections (dead ones are dropped as they are met).
    slots: Mutex<Vec<Weak<Slot>>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// One connection's last request, as far as purges care.
pub struct Slot {
    /// What the connection is answering or has answered.
    state: Mutex<State>,
    /// Told of every step of `state` while a purge watches it.
    changed: tokio::sync::Notify,
    /// How to ask for a confirmation.
    probe: Box<dyn Probe>,
}

/// The last request of a connection.
struct State {
    /// Requests so far (the last one's number).
    number: u64,
    /// The last request's name (lower case, no final dot), when it was a lookup.
    name: [u8; MAX_NAME],
    /// Bytes of `name`; 0 when the last request was not a lookup.
    len: usize,
    /// The answer to request `number` has been written.
    answered: bool,
    /// Requests up to this number are confirmed taken in by pdns.
    confirmed: u64,
    /// The highest number a confirmation was asked for.
    asked: u64,
    /// Purges waiting on this slot: while any does, steps are told on `changed`.
    watchers: u32,
    /// A purge waited the whole [`SETTLE_LIMIT`] for it in vain (a peer that never confirms):
    /// later purges do not wait for it until it speaks again.
    silent: bool,
}

impl InFlight {
    /// No connections yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A slot for a new connection, confirmed through `probe`.
    pub fn register(&self, probe: Box<dyn Probe>) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            state: Mutex::new(State {
                number: 0,
                name: [0; MAX_NAME],
                len: 0,
                answered: true,
                confirmed: 0,
                asked: 0,
                watchers: 0,
                silent: false,
            }),
            changed: tokio::sync::Notify::new(),
            probe,
        });
        let mut slots = lock(&self.slots);
        slots.retain(|slot| slot.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        slot
    }

    /// Waits (at most [`SETTLE_LIMIT`]) until pdns has confirmed every answer for `names`
    /// (lower case, no final dot; each with everything below it; the empty name is every
    /// name) that was being read or sent when this was called.
    pub async fn settle(&self, names: &[String]) {
        let waiting: Vec<(Arc<Slot>, u64)> = {
            let slots = lock(&self.slots);
            slots
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|slot| {
                    let number = slot.unconfirmed_for(names)?;
                    Some((slot, number))
                })
                .collect()
        };
        if waiting.is_empty() {
            return;
        }
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut waits = tokio::task::JoinSet::new();
        for (slot, number) in waiting {
            waits.spawn(async move {
                slot.wait_confirmed(number, deadline).await;
                lock(&slot.state).watchers -= 1;
            });
        }
        while waits.join_next().await.is_some() {}
    }

    /// Open connections with a slot (for tests and metrics).
    pub fn connections(&self) -> usize {
        lock(&self.slots)
            .iter()
            .filter(|slot| slot.strong_count() > 0)
            .count()
    }
}

impl Slot {
    /// A request was read: a lookup of `name` (as pdns sent it), or something else (None).
    /// Called before the store is read, so a purge after a commit always sees a lookup that
    /// may have read the data before it.
    pub fn begin(&self, name: Option<&str>) {
        let mut state = lock(&self.state);
        state.number += 1;
        // pdns asks only after it took in the previous answer.
        state.confirmed = state.number - 1;
        state.answered = false;
        state.silent = false;
        state.len = 0;
        if let Some(name) = name {
            let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
            if name.len() <= MAX_NAME {
                for (kept, byte) in state.name.iter_mut().zip(name) {
                    *kept = byte.to_ascii_lowercase();
                }
                state.len = name.len();
            }
        }
        if state.watchers > 0 {
            self.changed.notify_waiters();
        }
    }

    /// The answer to the request begun last has been written.
    pub fn answered(&self) {
        let mut state = lock(&self.state);
        state.answered = true;
        if state.watchers > 0 {
            self.changed.notify_waiters();
        }
    }

    /// The peer confirmed taking in everything up to the request numbered `number`.
    pub fn confirmed(&self, number: u64) {
        let mut state = lock(&self.state);
        if number <= state.number && number > state.confirmed {
            state.confirmed = number;
        }
        state.silent = false;
        if state.watchers > 0 {
            self.changed.notify_waiters();
        }
    }

    /// The number of this connection's last request if it is a lookup at or below one of
    /// `names` that pdns has not confirmed; marks the slot watched.
    fn unconfirmed_for(&self, names: &[String]) -> Option<u64> {
        let mut state = lock(&self.state);
        if state.len == 0 || state.confirmed >= state.number || state.silent {
            return None;
        }
        let name = &state.name[..state.len];
        if !names.iter().any(|purged| at_or_below(name, purged)) {
            return None;
        }
        state.watchers += 1;
        Some(state.number)
    }

    /// Waits until request `number` is confirmed, asking the probe once it is answered.
    async fn wait_confirmed(&self, number: u64, deadline: Instant) {
        // When the kernel says pdns has read the answer: since when.
        let mut read_since: Option<Instant> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let ask = {
                let mut state = lock(&self.state);
                if state.confirmed >= number {
                    return;
                }
                // Still being answered: the question must follow the answer.
                let ask = state.answered && state.number == number && state.asked < number;
                if ask {
                    state.asked = number;
                }
                ask.then_some(state.number)
            };
            let mut asked = false;
            if let Some(number) = ask {
                asked = self.probe.ask(number);
            }
            if !asked {
                if let Some(true) = self.probe.all_read() {
                    let state = lock(&self.state);
                    if state.answered && state.number == number {
                        drop(state);
                        // Read is not yet cached: pdns caches once it has built its answer,
                        // and on a loaded machine its thread may wait for a CPU in between.
                        // Its next request says it is done; failing that, READ_GRACE.
                        let since = *read_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= READ_GRACE {
                            self.confirmed(number);
                            return;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let mut state = lock(&self.state);
                if state.confirmed < number {
                    state.silent = true;
                }
                return;
            }
            let polls = self.probe.all_read().is_some();
            let wait = if polls {
                POLL_INTERVAL.min(deadline - now)
            } else {
                deadline - now
            };
            let _ = tokio::time::timeout(wait, changed).await;
        }
    }
}

/// Whether `name` is `parent` or below it (`parent` empty: every name).
fn at_or_below(name: &[u8], parent: &str) -> bool {
    parent.is_empty() || std::str::from_utf8(name).is_ok_and(|name| is_within(name, parent))
}

/// A mutex's guard, whether or not a holder panicked (the state stays meaningful).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A probe that can prove nothing but the next request.
    #[derive(Debug, Default)]
    struct NextRequestOnly;

    impl Probe for NextRequestOnly {
        fn ask(&self, _: u64) -> bool {
            false
        }
        fn all_read(&self) -> Option<bool> {
            None
        }
    }

    /// A probe that records questions, and says what `read` holds when polled.
    #[derive(Default)]
    struct Recorder {
        asked: AtomicU64,
        relay: bool,
        read: Option<Arc<AtomicBool>>,
    }

    impl Probe for Arc<Recorder> {
        fn ask(&self, number: u64) -> bool {
            if self.relay {
                self.asked.store(number, Ordering::SeqCst);
            }
            self.relay
        }
        fn all_read(&self) -> Option<bool> {
            self.read.as_ref().map(|read| read.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn names_match_at_or_below() {
        assert!(at_or_below(b"h1.dyn.example", "h1.dyn.example"));
        assert!(at_or_below(b"a.h1.dyn.example", "h1.dyn.example"));
        assert!(!at_or_below(b"xh1.dyn.example", "h1.dyn.example"));
        assert!(!at_or_below(b"dyn.example", "h1.dyn.example"));
        assert!(at_or_below(b"anything", ""));
    }

    #[tokio::test]
    async fn nothing_on_its_way_costs_no_wait() {
        let inflight = InFlight::new();
        let slot = inflight.register(Box::new(NextRequestOnly));
        slot.begin(Some("other.dyn.example."));
        slot.answered();
        let started = Instant::now();
        inflight.settle(&["h1.dyn.example".into()]).await;
        // A lookup that was not a lookup, or was confirmed, neither.
        slot.begin(None);
        inflight.settle(&["".into()]).await;
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_purge_waits_for_the_next_request() {
        let inflight = InFlight::new();
        let slot = inflight.register(Box::new(NextRequestOnly));
        slot.begin(Some("H1.Dyn.Example."));
        slot.answered();
        let settled = Arc::new(AtomicBool::new(false));
        let waiting = {
            let inflight = Arc::clone(&inflight);
            let settled = Arc::clone(&settled);
            tokio::spawn(async move {
                inflight.settle(&["h1.dyn.example".into()]).await;
                settled.store(true, Ordering::SeqCst);
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !settled.load(Ordering::SeqCst),
            "the answer may not be cached yet"
        );
        slot.begin(Some("h2.dyn.example."));
        waiting.await.unwrap();
        assert!(settled.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_relay_is_asked_after_the_answer_and_its_confirmation_settles() {
        let inflight = InFlight::new();
        let recorder = Arc::new(Recorder {
            relay: true,
            ..Recorder::default()
        });
        let slot = inflight.register(Box::new(Arc::clone(&recorder)));
        slot.begin(Some("h1.dyn.example."));
        let waiting = {
            let inflight = Arc::clone(&inflight);
            tokio::spawn(async move { inflight.settle(&["dyn.example".into()]).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            recorder.asked.load(Ordering::SeqCst),
            0,
            "not asked before the answer is written: the question would overtake it"
        );
        slot.answered();
        while recorder.asked.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(!waiting.is_finished());
        slot.confirmed(recorder.asked.load(Ordering::SeqCst));
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_socket_with_nothing_unread_settles() {
        let inflight = InFlight::new();
        let read = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Recorder {
            read: Some(Arc::clone(&read)),
            ..Recorder::default()
        });
        let slot = inflight.register(Box::new(recorder));
        slot.begin(Some("h1.dyn.example."));
        slot.answered();
        let waiting = {
            let inflight = Arc::clone(&inflight);
            tokio::spawn(async move { inflight.settle(&["h1.dyn.example".into()]).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        read.store(true, Ordering::SeqCst);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_peer_holds_a_purge_no_longer_than_the_limit() {
        let inflight = InFlight::new();
        let slot = inflight.register(Box::new(NextRequestOnly));
        slot.begin(Some("h1.dyn.example."));
        slot.answered();
        let started = Instant::now();
        inflight.settle(&["h1.dyn.example".into()]).await;
        assert_eq!(started.elapsed().as_secs(), SETTLE_LIMIT.as_secs());
        // Silent since: the next purge does not wait for it again.
        let started = Instant::now();
        inflight.settle(&["h1.dyn.example".into()]).await;
        assert!(started.elapsed() < Duration::from_millis(100));
        // Until it speaks: then it is waited for again.
        slot.begin(Some("h1.dyn.example."));
        slot.answered();
        assert_eq!(slot.unconfirmed_for(&["h1.dyn.example".into()]), Some(2));
    }
}
