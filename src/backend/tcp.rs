//! The backend's line-JSON TCP listener: the same protocol as the unix socket (`lines.rs`),
//! for `certadns-ddns relay`, which pdns on another host runs through its `pipe` connector.
//!
//! Only peers in `backend-allow-from` are served: the backend hands out every zone in full
//! and takes `setNotified`. Connections stay open for as long as the relay keeps them (it
//! holds one per pdns backend instance); TCP keepalive frees those of a relay host that
//! vanished.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::Backend;
use super::lines::ConnectionThreads;
use crate::handover::Handover;
use crate::net::{AllowList, tune_stream};

/// Serves line-JSON connections on `listener`, and those a previous process handed over
/// (`inherited`), until the handover begins; then waits up to `grace` for them to stop
/// reading.
pub async fn serve_tcp(
    listener: TcpListener,
    allow_from: Arc<AllowList>,
    backend: Backend,
    first_request_timeout: Duration,
    handover: Arc<Handover>,
    inherited: Vec<(String, OwnedFd)>,
    grace: Duration,
) {
    let threads = ConnectionThreads::new("tcp", first_request_timeout, Arc::clone(&handover));
    for (name, fd) in inherited {
        let stream = std::net::TcpStream::from(fd);
        match stream.peer_addr() {
            Ok(peer) if allow_from.check(peer) && stream.set_nonblocking(false).is_ok() => {
                threads.resume(name, stream, &backend);
            }
            _ => drop(handover.resume(name, stream)),
        }
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = handover.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "tcp backend: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !allow_from.check(peer) {
            continue;
        }
        tracing::debug!(%peer, "tcp backend: connection accepted");
        tune_stream(&stream, true);
        let stream = stream.into_std().and_then(|stream| {
            stream.set_nonblocking(false)?;
            Ok(stream)
        });
        match stream {
            Ok(stream) => threads.spawn(stream, &backend),
            Err(error) => tracing::warn!(%error, %peer, "tcp backend: cannot use the connection"),
        }
    }
    drop(listener);
    threads.handed_over(grace).await;
}
