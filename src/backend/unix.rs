//! The unix-socket connector: pdns's `unix:path=...`, line JSON (see `lines.rs`).
//!
//! The socket file is created with mode 0660 (owner and group: put pdns in the service's
//! group) and removed on shutdown.

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio::sync::watch;

use super::Backend;
use super::lines::ConnectionThreads;

/// Binds the socket at `path`: replaces a stale socket file left by a crash, refuses one that
/// a live process still listens on. The socket appears at `path` with mode 0660 already: it
/// is bound in a private (0700) directory beside `path`, given its mode there, then renamed
/// into place, so no one can connect to it while it has the umask's mode.
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
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let private = parent.join(format!(".certadns-socket-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let staged = private.join("backend.sock");
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Serves connections on `listener` until `shutdown` turns true, then removes the socket file.
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
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
        let stream = accepted
            .and_then(|(stream, _)| stream.into_std())
            .and_then(|stream| {
                stream.set_nonblocking(false)?;
                Ok(stream)
            });
        match stream {
            Ok(stream) => threads.spawn(stream, &backend, "unix"),
            Err(error) => {
                tracing::warn!(%error, "unix backend: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(%error, path = %path.display(), "could not remove the backend socket");
    }
}
