//! A slow, reordering link for tests: a TCP proxy on loopback that passes each chunk from the
//! upstream back to the client after a random delay (0 to `max_delay`), in order on each
//! connection but overtaking each other across connections, as answers do over a WAN. What the
//! client sends goes through at once.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The proxy; stops accepting when dropped (connections end with their peers).
pub struct DelayProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Tells the accept loop to stop.
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Proxies to `upstream`, delaying what comes back by up to `max_delay`.
    pub fn start(upstream: SocketAddr, max_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            relay(client, server, max_delay);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Carries one connection: client to server at once, server to client delayed.
fn relay(client: TcpStream, server: TcpStream, max_delay: Duration) {
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
            let delay = max_delay.mul_f64(rand::random::<f64>());
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
