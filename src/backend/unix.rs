//! The unix-socket connector: one JSON object per line each way, strictly one request in
//! flight per connection, `initialize` first on every connection.
//!
//! pdns keeps a handful of these connections open (one per distributor thread, plus short
//! ones for AXFR and the zone cache) and waits on each answer, so each connection gets its own
//! thread doing blocking reads, SQLite and writes: no hop between runtimes on the hot path.
//! The socket file is created with mode 0660 (owner and group: put pdns in the service's
//! group) and removed on shutdown.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::UnixListener;
use tokio::sync::watch;

use super::Backend;
use super::protocol::{Query, Reply};

/// Largest request line taken; pdns's are a few hundred bytes.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Most connections served at once; pdns opens about five.
const MAX_CONNECTIONS: usize = 256;

/// Binds the socket at `path`: replaces a stale socket file left by a crash, refuses one that
/// a live process still listens on, and sets mode 0660.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves connections on `listener` until `shutdown` turns true, then removes the socket file.
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
    backend: Backend,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::net::stop_requested(&mut shutdown) => break,
        };
        let stream = match accepted.and_then(|(stream, _)| stream.into_std()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "unix backend: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!("unix backend: too many connections; closing the new one");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let backend = backend.clone();
        let open = Arc::clone(&open);
        let spawned = std::thread::Builder::new()
            .name("unix-backend".into())
            .spawn(move || {
                if let Err(error) = serve_connection(stream, &backend) {
                    tracing::debug!(%error, "unix backend: connection ended with an error");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "unix backend: cannot start a connection thread");
        }
    }
    drop(listener);
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(%error, path = %path.display(), "could not remove the backend socket");
    }
}

/// Answers requests on one connection until pdns closes it.
fn serve_connection(
    stream: std::os::unix::net::UnixStream,
    backend: &Backend,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE_BYTES {
            writer.write_all(&reply_line(&Reply::refusal(
                "certadns-ddns: request too long",
            )))?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match Query::from_json(&line) {
            Ok(query) => backend.handle(&query),
            Err(error) => {
                tracing::debug!(%error, "unix backend: undecodable request");
                Reply::refusal(format!("certadns-ddns: {error}"))
            }
        };
        writer.write_all(&reply_line(&reply))?;
    }
}

/// A reply as one line.
fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut bytes = reply.to_json();
    bytes.push(b'\n');
    bytes
}
