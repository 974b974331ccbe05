//! The unix-socket connector: pdns's `unix:path=...`, line JSON (see `lines.rs`).
//!
//! The socket file is created with mode 0660 (owner and group: put pdns in the service's
//! group) and removed on shutdown, unless systemd keeps the listener for the next process
//! (`handover.rs`): then the file stays, and pdns's connects wait in the backlog.

use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use super::Backend;
use super::lines::ConnectionThreads;
use crate::handover::{Handover, listener_name};

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

/// The listener a previous process stored (`inherited`: the fd and the tag of its name) if
/// the socket file at `path` is still the one it made, else a new one ([`bind_unix`]), stored
/// under a name that says which file it made (device and inode), since a unix listener's
/// own address is where it was bound, not where it was renamed to.
pub fn unix_listener(
    path: &Path,
    inherited: Option<(OwnedFd, Option<String>)>,
    handover: &Handover,
) -> std::io::Result<UnixListener> {
    if let Some((fd, tag)) = inherited {
        if tag.is_some() && tag == file_tag(path) {
            let listener = std::os::unix::net::UnixListener::from(fd);
            listener.set_nonblocking(true)?;
            return UnixListener::from_std(listener);
        }
        tracing::info!(
            path = %path.display(),
            "the stored unix listener is not the socket file at the configured path: binding anew"
        );
        handover.remove(&listener_name("backend-unix", tag.as_deref()));
    }
    let listener = bind_unix(path)?;
    let name = listener_name("backend-unix", file_tag(path).as_deref());
    handover.store(&name, std::os::fd::AsFd::as_fd(&listener));
    Ok(listener)
}

/// The device and inode of the socket file at `path` (`DEV.INO`), if there is one.
fn file_tag(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::symlink_metadata(path).ok()?;
    metadata
        .file_type()
        .is_socket()
        .then(|| format!("{}.{}", metadata.dev(), metadata.ino()))
}

/// Serves connections on `listener`, and those a previous process handed over (`inherited`),
/// until the handover begins; then stops accepting, and removes the socket file unless
/// systemd keeps the listener (waiting up to `grace` for the connections to stop reading).
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
    backend: Backend,
    first_request_timeout: Duration,
    handover: Arc<Handover>,
    inherited: Vec<(String, OwnedFd)>,
    grace: Duration,
) {
    let threads = ConnectionThreads::new("unix", first_request_timeout, Arc::clone(&handover));
    for (name, fd) in inherited {
        let stream = std::os::unix::net::UnixStream::from(fd);
        // The flag is the open file's, shared with the previous process's tokio side.
        if let Err(error) = stream.set_nonblocking(false) {
            tracing::warn!(%error, "unix backend: cannot resume a connection");
            drop(handover.resume(name, stream));
            continue;
        }
        threads.resume(name, stream, &backend);
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = handover.wait() => break,
        };
        let stream = accepted
            .and_then(|(stream, _)| stream.into_std())
            .and_then(|stream| {
                stream.set_nonblocking(false)?;
                Ok(stream)
            });
        match stream {
            Ok(stream) => threads.spawn(stream, &backend),
            Err(error) => {
                tracing::warn!(%error, "unix backend: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    if handover.is_enabled() {
        threads.handed_over(grace).await;
    } else if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(%error, path = %path.display(), "could not remove the backend socket");
    }
}
