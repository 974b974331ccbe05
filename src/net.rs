//! The one HTTP/1.1 accept loop: connection cap, header timeout, head-size cap, graceful drain.
//!
//! Knows nothing of what it serves: it hands each request and its TCP peer to a handler.
//! HTTP/1 only, because every dyndns2 client (and pdns's HTTP connector) speaks HTTP/1.x.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for each request head to arrive, which also bounds idle keep-alive.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// How long in-flight requests may take after shutdown is asked.
    pub shutdown_grace: Duration,
    /// Keep connections open between requests (HTTP/1.1 keep-alive); when false, every answer
    /// carries `Connection: close` and the connection ends after it.
    pub keep_alive: bool,
}

/// Serves HTTP on `listener` until `shutdown` turns true, then stops accepting and waits up to
/// the grace period for open connections to finish their current request.
pub async fn serve_http<H, F>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(options.max_connections));
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
        tracing::debug!(%peer, "connection accepted");
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(request, peer).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(options.max_header_bytes)
            .keep_alive(options.keep_alive)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await of the caller.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
