//! Restarts that pdns never sees: the sockets that outlive the process, through systemd's
//! file-descriptor store (systemd.io, "File Descriptor Store"; `FileDescriptorStoreMax=` in
//! `dist/certadns-ddns.service`).
//!
//! Why: pdns's unix connector writes into its connection without checking it, and its
//! communicator thread ends the whole pdns on the first failed call (ARCHITECTURE.md, and
//! `pdns-remote-backend.md` §13). A connection closed by our exit is therefore a SERVFAIL at
//! best and a dead pdns at worst; only a connection that stays open across the restart is
//! invisible. So:
//!
//! * every listener, and every accepted backend connection, is handed to systemd
//!   (`FDSTORE=1` with an `FDNAME`) as it is made; a connection that ends is shut down
//!   (`shutdown(2)`: systemd holds a duplicate, so a plain close would never reach the peer)
//!   and taken out again (`FDSTOREREMOVE=1`);
//! * on SIGTERM, once the update listener has drained, the backend connections finish the
//!   request they have read and stop reading ([`Handover::begin`]); pdns never pipelines, so
//!   what it sends next waits in the kernel for the next process;
//! * at start, [`Inherited::from_env`] takes back what systemd passes (`LISTEN_FDS`,
//!   `LISTEN_FDNAMES`, `LISTEN_PID`), and `serve` carries on with those listeners and those
//!   connections.
//!
//! Names: listeners are `listen-<name>` (one per configured listener); connections are
//! `conn-<kind>-<process tag>-<n>`, `kind` being `http`, `unix` or `tcp`, unique across
//! processes, so that removing one never removes another.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or by a test harness speaking its
//! protocol) nothing is stored and nothing changes: connections close at exit as before.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};

/// The process's side of systemd's file-descriptor store, and the signal that hands the
/// backend connections over to the next process. Shared (`Arc`) by every listener.
#[derive(Debug)]
pub struct Handover {
    /// Whether fds are sent to systemd at all.
    enabled: bool,
    /// What makes this process's connection names unique.
    tag: String,
    /// The next connection number.
    next: AtomicU64,
    /// Set by [`Handover::begin`].
    begun: AtomicBool,
    /// The same, for tasks.
    begun_tx: watch::Sender<bool>,
    /// Readable (end of file) once the handover has begun, for the line connections' threads,
    /// which wait in `poll(2)` on it and their connection.
    wake_read: UnixStream,
    /// Dropped by [`Handover::begin`].
    wake_write: Mutex<Option<UnixStream>>,
    /// The notifications for systemd, sent in order by a thread of their own: a send blocks
    /// while systemd's socket queue is full, and must never hold an accept loop (or a tokio
    /// worker) meanwhile. None once [`Handover::finish`] has run.
    notices: Mutex<Option<std::sync::mpsc::Sender<Notice>>>,
    /// That thread.
    notifier: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One notification for the fd store.
#[derive(Debug)]
enum Notice {
    /// `FDSTORE=1` with `FDNAME`, and a duplicate of the fd (valid whatever happens to the
    /// original meanwhile).
    Store(String, OwnedFd),
    /// `FDSTOREREMOVE=1` with `FDNAME`.
    Remove(String),
}

/// Sends `notice` to systemd; a failure is logged: the service runs on, and only this socket
/// will not survive a restart (or lingers in the store until it hangs up).
fn send(notice: &Notice) {
    let sent = match notice {
        Notice::Store(name, fd) => sd_notify::notify_with_fds(
            &[
                sd_notify::NotifyState::FdStore,
                sd_notify::NotifyState::FdName(name),
            ],
            &[fd.as_fd()],
        ),
        Notice::Remove(name) => sd_notify::notify(&[
            sd_notify::NotifyState::FdStoreRemove,
            sd_notify::NotifyState::FdName(name),
        ]),
    };
    if let Err(error) = sent {
        tracing::warn!(%error, ?notice, "cannot tell systemd's fd store");
    }
}

impl Handover {
    /// Stores fds when systemd asks for notifications (`NOTIFY_SOCKET`) and does not say the
    /// store is off (`FDSTORE=0`, which systemd 254 and later set to `FileDescriptorStoreMax=`).
    pub fn from_env() -> std::io::Result<Self> {
        let notify = std::env::var_os("NOTIFY_SOCKET").is_some_and(|path| !path.is_empty());
        let store_off = std::env::var("FDSTORE").is_ok_and(|max| max.trim() == "0");
        Self::new(notify && !store_off)
    }

    /// Stores nothing: connections close at exit (the CLI's tests, benchmarks).
    pub fn disabled() -> std::io::Result<Self> {
        Self::new(false)
    }

    /// A handover that stores fds or not.
    fn new(enabled: bool) -> std::io::Result<Self> {
        let (wake_read, wake_write) = UnixStream::pair()?;
        let (notices, notifier) = if enabled {
            let (notices, queue) = std::sync::mpsc::channel::<Notice>();
            let notifier =
                std::thread::Builder::new()
                    .name("fd-store".into())
                    .spawn(move || {
                        for notice in queue {
                            send(&notice);
                        }
                    })?;
            (Some(notices), Some(notifier))
        } else {
            (None, None)
        };
        Ok(Self {
            enabled,
            tag: format!("{:08x}", rand::random::<u32>()),
            next: AtomicU64::new(0),
            begun: AtomicBool::new(false),
            begun_tx: watch::Sender::new(false),
            wake_read,
            wake_write: Mutex::new(Some(wake_write)),
            notices: Mutex::new(notices),
            notifier: Mutex::new(notifier),
        })
    }

    /// Queues `notice` for the notifier thread.
    fn tell(&self, notice: Notice) {
        let notices = self
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match notices.as_ref() {
            Some(notices) => {
                if let Err(unsent) = notices.send(notice) {
                    send(&unsent.0);
                }
            }
            // After `finish` (a connection ending as the process exits): at once.
            None => send(&notice),
        }
    }

    /// Waits until every queued notification has reached systemd: before exiting, so that the
    /// next process gets every connection this one stored.
    pub fn finish(&self) {
        drop(
            self.notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(notifier) = notifier {
            let _ = notifier.join();
        }
    }

    /// Whether fds go to systemd's store.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Hands a duplicate of `fd` to systemd under `name` (queued: see [`Handover::finish`]).
    /// A failure is logged: the service runs on, and only this socket will not survive a
    /// restart.
    pub fn store(&self, name: &str, fd: BorrowedFd<'_>) {
        if !self.enabled {
            return;
        }
        match fd.try_clone_to_owned() {
            Ok(duplicate) => self.tell(Notice::Store(name.to_string(), duplicate)),
            Err(error) => {
                tracing::warn!(%error, name, "cannot hand a socket to systemd's fd store")
            }
        }
    }

    /// Takes `name` out of systemd's store (systemd closes its duplicate).
    pub fn remove(&self, name: &str) {
        if self.enabled {
            self.tell(Notice::Remove(name.to_string()));
        }
    }

    /// Stores a new connection of `kind` (`http`, `unix`, `tcp`) and wraps it, or returns it
    /// as it is when nothing is stored.
    pub fn keep<S: AsFd>(self: &Arc<Self>, kind: &str, stream: S) -> Kept<S> {
        if !self.enabled {
            return Kept::plain(stream);
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("conn-{kind}-{}-{number}", self.tag);
        self.store(&name, stream.as_fd());
        Kept {
            stream,
            ticket: Some(Ticket {
                handover: Arc::clone(self),
                name,
            }),
        }
    }

    /// Wraps a connection systemd passed back under `name` (already in its store).
    pub fn resume<S: AsFd>(self: &Arc<Self>, name: String, stream: S) -> Kept<S> {
        Kept {
            stream,
            ticket: Some(Ticket {
                handover: Arc::clone(self),
                name,
            }),
        }
    }

    /// Hands the backend connections over: from now on each finishes the request it has read
    /// and stops reading, leaving the rest to the next process.
    pub fn begin(&self) {
        self.begun.store(true, Ordering::Release);
        self.begun_tx.send_replace(true);
        drop(
            self.wake_write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }

    /// Whether [`Handover::begin`] was called.
    pub fn begun(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// Turns true when [`Handover::begin`] is called (the stop signal of the backend's
    /// listeners).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.begun_tx.subscribe()
    }

    /// Resolves once [`Handover::begin`] is called.
    pub async fn wait(&self) {
        let mut begun = self.begun_tx.subscribe();
        let _ = begun.wait_for(|begun| *begun).await;
    }

    /// Blocks until `connection` has something to read (`true`: read it) or the handover has
    /// begun (`false`: stop reading); past `timeout`, an error (`TimedOut`). What is already
    /// buffered must be read first.
    pub fn wait_readable(
        &self,
        connection: BorrowedFd<'_>,
        timeout: Option<std::time::Duration>,
    ) -> std::io::Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(limit) => PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX),
        };
        loop {
            if self.begun() {
                return Ok(false);
            }
            let mut fds = [
                PollFd::new(connection, PollFlags::POLLIN),
                PollFd::new(self.wake_read.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) => return Err(std::io::ErrorKind::TimedOut.into()),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            }
            if fds[1].any().unwrap_or(false) {
                return Ok(false);
            }
            if fds[0].any().unwrap_or(false) {
                return Ok(true);
            }
        }
    }
}

/// A connection's place in systemd's store.
#[derive(Debug)]
struct Ticket {
    /// The store.
    handover: Arc<Handover>,
    /// Its `FDNAME`.
    name: String,
}

/// A connection that systemd may hold a duplicate of. Dropped before the handover, it is shut
/// down (the peer sees the close although systemd's duplicate stays open a moment longer) and
/// taken out of the store; dropped after it, it is left as it is, for the next process.
#[derive(Debug)]
pub struct Kept<S: AsFd> {
    /// The connection.
    stream: S,
    /// Where it is stored; none when nothing is.
    ticket: Option<Ticket>,
}

impl<S: AsFd> Kept<S> {
    /// A connection that is not stored (no handover for its listener).
    pub fn plain(stream: S) -> Self {
        Self {
            stream,
            ticket: None,
        }
    }

    /// The connection.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The connection, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Whether systemd holds it (so the handover applies to it).
    pub fn is_stored(&self) -> bool {
        self.ticket.is_some()
    }

    /// The handover, when stored.
    pub fn handover(&self) -> Option<&Arc<Handover>> {
        self.ticket.as_ref().map(|ticket| &ticket.handover)
    }

    /// Its name in the store, when stored.
    pub fn name(&self) -> Option<&str> {
        self.ticket.as_ref().map(|ticket| ticket.name.as_str())
    }

    /// Stores it again as its name followed by `suffix` (once), so that the next process knows
    /// what this one learnt of the peer. The old name comes out first: systemd ignores an fd
    /// it holds already, whatever its name (the notices reach it in order, all before exit).
    pub fn mark(&mut self, suffix: &str) {
        let Some(ticket) = &mut self.ticket else {
            return;
        };
        if ticket.name.ends_with(suffix) {
            return;
        }
        let marked = format!("{}{suffix}", ticket.name);
        ticket.handover.remove(&ticket.name);
        ticket.handover.store(&marked, self.stream.as_fd());
        ticket.name = marked;
    }
}

impl<S: AsFd> Drop for Kept<S> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        if ticket.handover.begun() {
            // Left open in systemd's store: the next process answers what comes next.
            return;
        }
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
        ticket.handover.remove(&ticket.name);
    }
}

/// A kept connection reads and writes as the connection itself (what the non-stored
/// listeners hand to hyper).
impl<S: AsFd + AsyncRead + Unpin> AsyncRead for Kept<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsFd + AsyncWrite + Unpin> AsyncWrite for Kept<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// What a connection owes its peer, for the handover of connections served by hyper: the
/// bytes of a request read and no answer flushed yet.
#[derive(Debug, Default)]
pub struct Gate {
    /// Request bytes read since the last answer was flushed.
    owed: AtomicBool,
    /// Told when a read was held back by the handover with nothing owed: the connection may be
    /// dropped (left to the next process).
    parked: Notify,
}

impl Gate {
    /// Whether a request is read and not yet answered.
    pub fn owes(&self) -> bool {
        self.owed.load(Ordering::Acquire)
    }

    /// Resolves once the connection holds nothing of its peer's.
    pub async fn parked(&self) {
        self.parked.notified().await;
    }
}

/// A stored TCP connection for hyper: reads and writes pass through until the handover;
/// after it, a read that would start a new request is held back, so that the request stays
/// in the kernel for the next process. hyper writes an answer only in `poll_flush`-led
/// bursts and calls the stream's `poll_flush` once its buffer is empty, so "flushed after a
/// write" is "answered".
#[derive(Debug)]
pub struct Gated {
    /// The connection.
    kept: Kept<tokio::net::TcpStream>,
    /// Shared with the connection's task.
    gate: Arc<Gate>,
    /// Bytes written since the last flush.
    wrote: bool,
}

impl Gated {
    /// Wraps `kept`; the task watches `gate`.
    pub fn new(kept: Kept<tokio::net::TcpStream>) -> (Self, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        (
            Self {
                kept,
                gate: Arc::clone(&gate),
                wrote: false,
            },
            gate,
        )
    }

    /// Whether the handover holds reads back now.
    fn holding(&self) -> bool {
        self.kept
            .handover()
            .is_some_and(|handover| handover.begun())
            && !self.gate.owes()
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.holding() {
            self.gate.parked.notify_one();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(this.kept.get_mut()).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.gate.owed.store(true, Ordering::Release);
        }
        result
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(this.kept.get_mut()).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            this.wrote = true;
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(this.kept.get_mut()).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            this.wrote = true;
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.kept.get_ref().is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(this.kept.get_mut()).poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(()))) && this.wrote {
            this.wrote = false;
            this.gate.owed.store(false, Ordering::Release);
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.kept.get_mut()).poll_shutdown(cx)
    }
}

/// The `FDNAME` of listener `name`, with its `tag`.
pub fn listener_name(name: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("listen-{name}@{tag}"),
        None => format!("listen-{name}"),
    }
}

/// The sockets systemd passed to this process at start, by name.
#[derive(Debug, Default)]
pub struct Inherited {
    /// Listeners, by the name after `listen-` (up to an `@`): the fd, and what follows the
    /// `@` (what identifies the unix socket's file).
    listeners: BTreeMap<String, (OwnedFd, Option<String>)>,
    /// Connections, by kind (`http`, `unix`, `tcp`): their full names and fds.
    connections: BTreeMap<String, Vec<(String, OwnedFd)>>,
    /// Fds of names this version does not know (closed and removed by [`Inherited::finish`]).
    unknown: Vec<(String, OwnedFd)>,
}

impl Inherited {
    /// What systemd passed (`LISTEN_FDS` with `LISTEN_PID` naming this process), or nothing.
    pub fn from_env() -> std::io::Result<Self> {
        let passed = sd_notify::listen_fds_with_names()?.map(|(fd, name)| {
            // SAFETY: systemd passed these fds to this process (LISTEN_PID is ours), and
            // nothing else in it has taken them: this runs once, at start.
            (unsafe { OwnedFd::from_raw_fd(fd) }, name)
        });
        Ok(Self::sorted(passed))
    }

    /// `passed` sorted by the kind their names say.
    fn sorted(passed: impl IntoIterator<Item = (OwnedFd, String)>) -> Self {
        let mut inherited = Self::default();
        for (fd, name) in passed {
            if let Some(listener) = name.strip_prefix("listen-") {
                let (listener, tag) = match listener.split_once('@') {
                    Some((listener, tag)) => (listener, Some(tag.to_string())),
                    None => (listener, None),
                };
                inherited.listeners.insert(listener.to_string(), (fd, tag));
            } else if let Some(kind) = name
                .strip_prefix("conn-")
                .and_then(|rest| rest.split('-').next())
                .filter(|kind| ["http", "unix", "tcp"].contains(kind))
            {
                inherited
                    .connections
                    .entry(kind.to_string())
                    .or_default()
                    .push((name.clone(), fd));
            } else {
                inherited.unknown.push((name, fd));
            }
        }
        inherited
    }

    /// Whether anything was passed: a restart under pdns (whose connections, or connects
    /// waiting in a listener's backlog, must be answered at once), not a first start.
    pub fn is_restart(&self) -> bool {
        !self.listeners.is_empty() || self.connections.values().any(|list| !list.is_empty())
    }

    /// How many listeners and connections were passed, for the start-up log.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.listeners.len(),
            self.connections.values().map(Vec::len).sum(),
        )
    }

    /// Takes the listener stored as `listen-<name>`, with what followed an `@` in its name.
    pub fn take_listener(&mut self, name: &str) -> Option<(OwnedFd, Option<String>)> {
        self.listeners.remove(name)
    }

    /// Takes the connections of `kind`.
    pub fn take_connections(&mut self, kind: &str) -> Vec<(String, OwnedFd)> {
        self.connections.remove(kind).unwrap_or_default()
    }

    /// Closes and takes out of the store whatever was not taken: listeners no longer
    /// configured, connections of a listener no longer configured, names unknown here.
    pub fn finish(self, handover: &Handover) {
        for (name, (fd, tag)) in self.listeners {
            tracing::info!(
                listener = name,
                "a listener of the previous process is no longer configured: closed"
            );
            handover.remove(&listener_name(&name, tag.as_deref()));
            drop(fd);
        }
        for (name, fd) in self.connections.into_values().flatten() {
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
            handover.remove(&name);
        }
        for (name, fd) in self.unknown {
            tracing::info!(name, fd = fd.as_raw_fd(), "an unknown stored fd: closed");
            handover.remove(&name);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn fd() -> OwnedFd {
        OwnedFd::from(UnixStream::pair().unwrap().0)
    }

    #[test]
    fn passed_fds_are_sorted_by_their_names() {
        let mut inherited = Inherited::sorted([
            (fd(), "listen-updates".to_string()),
            (fd(), "listen-backend-unix@64768.1234".to_string()),
            (fd(), "conn-unix-0a1b2c3d-7".to_string()),
            (fd(), "conn-http-0a1b2c3d-8".to_string()),
            (fd(), "conn-http-99999999-0".to_string()),
            (fd(), "conn-smtp-0a1b2c3d-1".to_string()),
            (fd(), "stored".to_string()),
        ]);
        assert!(inherited.is_restart());
        assert_eq!(inherited.counts(), (2, 3));
        let (_, tag) = inherited.take_listener("backend-unix").unwrap();
        assert_eq!(tag.as_deref(), Some("64768.1234"));
        assert_eq!(
            listener_name("backend-unix", tag.as_deref()),
            "listen-backend-unix@64768.1234"
        );
        assert!(
            inherited.take_listener("backend-unix").is_none(),
            "taken once"
        );
        let http: Vec<String> = inherited
            .take_connections("http")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(http, ["conn-http-0a1b2c3d-8", "conn-http-99999999-0"]);
        assert_eq!(
            inherited.unknown.len(),
            2,
            "a kind and a name this version does not know"
        );
        assert!(!Inherited::default().is_restart(), "a first start");
    }

    #[test]
    fn without_a_store_nothing_is_kept_and_drops_close() {
        let handover = Arc::new(Handover::disabled().unwrap());
        let (ours, theirs) = UnixStream::pair().unwrap();
        let kept = handover.keep("unix", ours);
        assert!(!kept.is_stored());
        handover.begin();
        drop(kept);
        let mut byte = [0_u8; 1];
        assert_eq!(
            std::io::Read::read(&mut &theirs, &mut byte).unwrap(),
            0,
            "closed: the peer reads the end"
        );
    }

    #[test]
    fn a_stored_connection_is_shut_down_before_the_handover_and_left_open_after() {
        let handover = Arc::new(Handover::new(true).unwrap());
        // No NOTIFY_SOCKET here: the store messages go nowhere, the rules still apply.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let duplicate = ours.try_clone().unwrap(); // what systemd would hold
        drop(handover.keep("unix", ours));
        let mut byte = [0_u8; 1];
        assert_eq!(
            std::io::Read::read(&mut &theirs, &mut byte).unwrap(),
            0,
            "shut down although a duplicate is open"
        );
        drop(duplicate);

        let (ours, theirs) = UnixStream::pair().unwrap();
        let duplicate = ours.try_clone().unwrap();
        let kept = handover.keep("unix", ours);
        assert!(
            handover
                .wait_readable(
                    kept.get_ref().as_fd(),
                    Some(std::time::Duration::from_millis(10))
                )
                .is_err(),
            "nothing to read: timed out"
        );
        handover.begin();
        assert!(
            !handover
                .wait_readable(kept.get_ref().as_fd(), None)
                .unwrap(),
            "handed over"
        );
        drop(kept);
        std::io::Write::write_all(&mut &theirs, b"next request\n").unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&duplicate), &mut line).unwrap();
        assert_eq!(
            line, "next request\n",
            "left open: the next process reads on"
        );
    }
}
