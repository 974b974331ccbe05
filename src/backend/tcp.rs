//! The backend's line-JSON TCP listener: the same protocol as the unix socket (`lines.rs`),
//! for `certadns-ddns relay`, which pdns on another host runs through its `pipe` connector.
//!
//! Only peers in `backend-allow-from` are served: the backend hands out every zone in full
//! and takes `setNotified`. Connections stay open for as long as the relay keeps them (it
//! holds one per pdns backend instance); TCP keepalive frees those of a relay host that
//! vanished.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Backend;
use super::lines::ConnectionThreads;
use crate::net::{AllowList, tune_stream};

/// Serves line-JSON connections on `listener` until `shutdown` turns true.
pub async fn serve_tcp(
    listener: TcpListener,
    allow_from: Arc<AllowList>,
    backend: Backend,
    first_request_timeout: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let threads = ConnectionThreads::new(first_request_timeout);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::net::stop_requested(&mut shutdown) => break,
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
            Ok(stream) => threads.spawn(stream, &backend, "tcp"),
            Err(error) => tracing::warn!(%error, %peer, "tcp backend: cannot use the connection"),
        }
    }
}
