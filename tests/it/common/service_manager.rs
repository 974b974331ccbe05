//! systemd's side of the notification and file-descriptor-store protocols, for tests on a
//! machine where systemd is not PID 1 (systemd.io "File Descriptor Store", sd_notify(3),
//! sd_listen_fds(3)).
//!
//! What it does, as systemd 252 does for a `Type=notify` unit with `FileDescriptorStoreMax=`:
//! * a `NOTIFY_SOCKET` datagram socket; `FDSTORE=1` messages with their `FDNAME` and fds
//!   (SCM_RIGHTS) go into the store, one entry per name (a name stored again replaces it);
//!   `FDSTOREREMOVE=1` with `FDNAME` takes every fd of that name out (closing it);
//! * [`ServiceManager::command`] (a start or restart): drops the stored fds that report
//!   POLLHUP or POLLERR, as systemd does, and passes the rest at fd 3 onwards with
//!   `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (the child's own pid: `sh` sets it and
//!   `exec`s the binary, keeping the pid), plus `FDSTORE` (the maximum, as systemd 254 sets).

use std::io::IoSliceMut;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// The most fds the store holds (the unit's `FileDescriptorStoreMax=`).
pub const STORE_MAX: usize = 1024;

/// What the manager has received.
#[derive(Default)]
struct State {
    /// The fd store: names and fds, in the order stored.
    stored: Vec<(String, OwnedFd)>,
    /// Every message other than the fd store's, in order (`READY=1`, `STOPPING=1`, ...).
    messages: Vec<String>,
}

/// A stand-in for systemd, for one service. Like systemd, it reads its notify socket at all
/// times (a thread): a service's notification blocks while the socket's queue is full.
pub struct ServiceManager {
    /// Its path (`NOTIFY_SOCKET`).
    pub path: PathBuf,
    /// What the reading thread received.
    state: Arc<(Mutex<State>, Condvar)>,
    /// Tells the reading thread to stop.
    stop: Arc<AtomicBool>,
    /// While set, the reading thread reads nothing (a PID 1 busy elsewhere).
    paused: Arc<AtomicBool>,
}

impl ServiceManager {
    /// A manager whose notify socket is in `dir`.
    pub fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set the timeout");
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (shared, stopping, pausing) =
            (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&paused));
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if pausing.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                if let Some((text, fds)) = receive(&socket) {
                    let (state, changed) = &*shared;
                    state.lock().unwrap().take(text, fds);
                    changed.notify_all();
                }
            }
        });
        Self {
            path,
            state,
            stop,
            paused,
        }
    }

    /// Stops reading the notify socket (its queue fills, and senders block as on a busy
    /// systemd), or reads it again.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Waits until `message` has arrived (at most `limit`), and forgets the messages up to it.
    pub fn wait_for(&self, message: &str, limit: Duration) {
        let (state, changed) = &*self.state;
        let deadline = Instant::now() + limit;
        let mut state = state.lock().unwrap();
        loop {
            if let Some(at) = state.messages.iter().position(|got| got == message) {
                state.messages.drain(..=at);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {message:?} within {limit:?}; got {:?}",
                state.messages
            );
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Waits until the names in the store satisfy `done` (at most `limit`).
    pub fn wait_stored(&self, done: impl Fn(&[String]) -> bool, limit: Duration) {
        let (state, changed) = &*self.state;
        let deadline = Instant::now() + limit;
        let mut state = state.lock().unwrap();
        loop {
            let names: Vec<String> = state.stored.iter().map(|(name, _)| name.clone()).collect();
            if done(&names) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the store never got there: {names:?}");
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Every message received so far and not yet waited for.
    pub fn messages(&self) -> Vec<String> {
        self.state.0.lock().unwrap().messages.clone()
    }

    /// Waits until the reading thread has taken every notification already sent (all of an
    /// exited process's): a marker sent now comes after them.
    pub fn settle(&self) {
        let marker = format!("X-SETTLED={}\n", rand_marker());
        UnixDatagram::unbound()
            .and_then(|socket| socket.send_to(marker.as_bytes(), &self.path))
            .expect("send the marker");
        self.wait_for(&marker, Duration::from_secs(10));
    }

    /// `certadns-ddns serve --config CONFIG` started as systemd starts the unit ([`Self::command`]),
    /// once it has said READY=1 (within 20 s).
    pub fn serve(&self, config: &Path) -> super::Daemon {
        let daemon = super::Daemon::from_command(self.command(
            super::BIN,
            &["serve", "--config", config.to_str().expect("UTF-8 path")],
        ));
        self.wait_for("READY=1\n", Duration::from_secs(20));
        daemon
    }

    /// The names in the store now.
    pub fn stored_names(&self) -> Vec<String> {
        let state = self.state.0.lock().unwrap();
        state.stored.iter().map(|(name, _)| name.clone()).collect()
    }

    /// `program` with `args`, started as systemd starts the unit: the notify socket, and the
    /// stored fds still open at fd 3 onwards.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        self.settle();
        let mut state = self.state.0.lock().unwrap();
        // Hung-up fds leave the store, as systemd's POLLHUP watch takes them out.
        state.stored.retain(|(_, fd)| {
            let mut poll = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::empty(),
            )];
            nix::poll::poll(&mut poll, nix::poll::PollTimeout::ZERO).expect("poll a stored fd");
            let hung_up = poll[0].revents().is_some_and(|events| {
                events.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)
            });
            !hung_up
        });
        let names: Vec<String> = state.stored.iter().map(|(name, _)| name.clone()).collect();
        // Valid until the child has started: the store keeps them open meanwhile (the
        // caller starts the command before anything else touches the store).
        let raw: Vec<RawFd> = state.stored.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        drop(state);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"export LISTEN_PID=$$; exec "$0" "$@""#)
            .arg(program)
            .args(args)
            .env("NOTIFY_SOCKET", &self.path)
            .env("FDSTORE", STORE_MAX.to_string())
            .env_remove("LISTEN_PID");
        if raw.is_empty() {
            command
                .env_remove("LISTEN_FDS")
                .env_remove("LISTEN_FDNAMES");
        } else {
            command
                .env("LISTEN_FDS", raw.len().to_string())
                .env("LISTEN_FDNAMES", names.join(":"));
        }
        // Allocated here: nothing may allocate between fork and exec.
        let mut moved: Vec<RawFd> = Vec::with_capacity(raw.len());
        // SAFETY: only fcntl and dup2 between fork and exec, which are async-signal-safe, and
        // pushes within the capacity reserved above.
        unsafe {
            command.pre_exec(move || {
                // First out of the way of 3.., then into place (dup2 clears FD_CLOEXEC).
                let base = 3 + raw.len() as RawFd + 16;
                moved.clear();
                for fd in &raw {
                    let copy = nix::libc::fcntl(*fd, nix::libc::F_DUPFD_CLOEXEC, base);
                    if copy < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    moved.push(copy);
                }
                for (index, fd) in moved.iter().enumerate() {
                    if nix::libc::dup2(*fd, 3 + index as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        command
    }
}

impl Drop for ServiceManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl State {
    /// Handles one notification: the fd store's messages, or any other kept in order.
    fn take(&mut self, text: String, fds: Vec<OwnedFd>) {
        let fields: Vec<&str> = text.lines().collect();
        let name = fields
            .iter()
            .find_map(|field| field.strip_prefix("FDNAME="))
            .unwrap_or("stored")
            .to_string();
        if fields.contains(&"FDSTORE=1") {
            for fd in fds {
                self.stored.retain(|(stored, _)| *stored != name);
                assert!(self.stored.len() < STORE_MAX, "the fd store is full");
                self.stored.push((name.clone(), fd));
            }
        } else if fields.contains(&"FDSTOREREMOVE=1") {
            self.stored.retain(|(stored, _)| *stored != name);
        } else {
            self.messages.push(text);
        }
    }
}

/// A marker no other message is.
fn rand_marker() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// One notification and the fds that came with it, or none within the socket's timeout.
fn receive(socket: &UnixDatagram) -> Option<(String, Vec<OwnedFd>)> {
    let mut buffer = [0_u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 16]);
    let (length, fds) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) => message,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return None,
            Err(error) => panic!("receive a notification: {error}"),
        };
        let mut fds = Vec::new();
        for control in message.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(received) = control {
                // SAFETY: the kernel just gave these fds to this process.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (message.bytes, fds)
    };
    Some((String::from_utf8_lossy(&buffer[..length]).into_owned(), fds))
}
