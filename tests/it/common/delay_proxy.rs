//! A slow, reordering link for tests: a TCP proxy on loopback that passes each chunk from the
//! upstream back to the client after a random delay (0 to `max_delay`), in order on each
//! connection but overtaking each other across connections, as answers do over a WAN. What the
//! client sends goes through at once.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The proxy; stops accepting when dropped (connections end with their peers).
pub struct DelayProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Tells the accept loop to stop.
    stop: Arc<AtomicBool>,
    /// The one chunk to hold longer, when armed.
    hold: Arc<Hold>,
}

/// A chunk to hold: the first one containing `needle` is delayed by `delay` instead.
#[derive(Default)]
struct Hold {
    /// What to look for, and for how long to hold it; taken by the chunk held.
    armed: Mutex<Option<(Vec<u8>, Duration)>>,
    /// Chunks held so far, told on `held_changed`.
    held: Mutex<usize>,
    held_changed: Condvar,
}

impl DelayProxy {
    /// Proxies to `upstream`, delaying what comes back by up to `max_delay`.
    pub fn start(upstream: SocketAddr, max_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let hold = Arc::new(Hold::default());
        let holding = Arc::clone(&hold);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            relay(client, server, max_delay, Arc::clone(&holding));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { addr, stop, hold }
    }

    /// Holds the next chunk from the upstream that contains `needle` for `delay` (then the
    /// chunks behind it on its connection), as a link that is slow just then; returns the
    /// number of chunks held so far, for [`DelayProxy::wait_held`].
    pub fn hold_next(&self, needle: &str, delay: Duration) -> usize {
        *self.hold.armed.lock().unwrap() = Some((needle.as_bytes().to_vec(), delay));
        *self.hold.held.lock().unwrap()
    }

    /// Waits until more than `before` chunks have been held (at most 10 s); whether they have.
    pub fn wait_held(&self, before: usize) -> bool {
        let held = self.hold.held.lock().unwrap();
        let (held, _) = self
            .hold
            .held_changed
            .wait_timeout_while(held, Duration::from_secs(10), |held| *held <= before)
            .unwrap();
        *held > before
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Carries one connection: client to server at once, server to client delayed.
fn relay(client: TcpStream, server: TcpStream, max_delay: Duration, hold: Arc<Hold>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 64 * 1024];
        let mut due = Instant::now();
        loop {
            let read = match from_server.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let mut delay = max_delay.mul_f64(rand::random::<f64>());
            {
                let mut armed = hold.armed.lock().unwrap();
                let chunk = &buffer[..read];
                if let Some((needle, held)) = armed.as_ref() {
                    if chunk.windows(needle.len()).any(|window| window == needle) {
                        delay = *held;
                        *armed = None;
                        *hold.held.lock().unwrap() += 1;
                        hold.held_changed.notify_all();
                    }
                }
            }
            // In order on this connection: never before the chunk ahead of it.
            due = due.max(Instant::now() + delay);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to_client.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(std::net::Shutdown::Write);
    });
}
