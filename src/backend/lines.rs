//! The line-JSON connector, shared by the unix socket and the TCP listener: one JSON object per
//! line each way, strictly one request in flight per connection, `initialize` first on every
//! connection (answered like any other request).
//!
//! pdns keeps a handful of these connections open (one per distributor thread, plus short
//! ones for AXFR and the zone cache) and waits on each answer, so each connection gets its own
//! thread doing blocking reads, SQLite and writes: no hop between runtimes on the hot path.
//! A connection is never closed from this side while its peer keeps it: pdns (and the relay)
//! reuse them for as long as they live.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Backend;
use super::protocol::{Query, Reply};

/// Largest request line taken; pdns's are a few hundred bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Most connections served at once by one listener; pdns opens about five per instance.
const MAX_CONNECTIONS: usize = 256;

/// A connected socket of a line-JSON listener (unix or TCP).
pub(super) trait LineStream: Read + Write + Send + Sized + 'static {
    /// `UnixStream::set_read_timeout` / `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
    /// A second handle on the same socket.
    fn try_clone(&self) -> std::io::Result<Self>;
}

impl LineStream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn try_clone(&self) -> std::io::Result<Self> {
        Self::try_clone(self)
    }
}

impl LineStream for std::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn try_clone(&self) -> std::io::Result<Self> {
        Self::try_clone(self)
    }
}

/// Counts a listener's open connections and starts a thread for each new one.
#[derive(Debug, Clone)]
pub(super) struct ConnectionThreads {
    /// Connections open now.
    open: Arc<AtomicUsize>,
    /// Time a new connection has to send its first request; after that, none (pdns keeps
    /// its connections idle for as long as it likes, and must never find one closed under it).
    first_request_timeout: Duration,
}

impl ConnectionThreads {
    /// No connection yet; each new one must speak within `first_request_timeout`.
    pub(super) fn new(first_request_timeout: Duration) -> Self {
        Self {
            open: Arc::default(),
            first_request_timeout,
        }
    }

    /// Serves one connection on a thread of its own; refuses it (closes it at once) when
    /// [`MAX_CONNECTIONS`] are open.
    pub(super) fn spawn(&self, stream: impl LineStream, backend: &Backend, listener: &str) {
        if self.open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tracing::warn!(
                listener,
                "backend: too many connections; closing the new one"
            );
            return;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let backend = backend.clone();
        let open = Arc::clone(&self.open);
        let listener_name = listener.to_string();
        let first_request_timeout = self.first_request_timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("{listener}-backend"))
            .spawn(move || {
                if let Err(error) = serve_lines(stream, &backend, first_request_timeout) {
                    tracing::debug!(%error, listener = listener_name, "backend: connection ended with an error");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(error) = spawned {
            self.open.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(%error, listener, "backend: cannot start a connection thread");
        }
    }
}

/// Answers requests on one connection until the peer closes it (or, before its first
/// request, stays silent for `first_request_timeout`).
fn serve_lines(
    stream: impl LineStream,
    backend: &Backend,
    first_request_timeout: Duration,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(first_request_timeout))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut first = true;
    loop {
        let request = read_request_line(&mut reader, &mut line)?;
        if first && request != RequestLine::End {
            first = false;
            reader.get_ref().set_read_timeout(None)?;
        }
        let reply = match request {
            RequestLine::End => return Ok(()),
            RequestLine::TooLong => {
                writer.write_all(&reply_line(&Reply::refusal(
                    "certadns-ddns: request too long",
                )))?;
                return Ok(());
            }
            RequestLine::Blank => continue,
            RequestLine::Request => answer_line(backend, &line),
        };
        writer.write_all(&reply_line(&reply))?;
    }
}

/// What [`read_request_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLine {
    /// The peer closed the connection.
    End,
    /// More than [`MAX_LINE_BYTES`] without a newline: the connection is answered and closed.
    TooLong,
    /// Only whitespace: skipped.
    Blank,
    /// A request, in the line buffer.
    Request,
}

/// Reads the next request line into `line` (cleared first), reading at most
/// [`MAX_LINE_BYTES`] + 1 bytes whatever the peer sends.
pub fn read_request_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<RequestLine> {
    line.clear();
    let read = reader
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', line)?;
    Ok(if read == 0 {
        RequestLine::End
    } else if line.len() > MAX_LINE_BYTES {
        RequestLine::TooLong
    } else if line.iter().all(u8::is_ascii_whitespace) {
        RequestLine::Blank
    } else {
        RequestLine::Request
    })
}

/// The reply to one request line.
pub fn answer_line(backend: &Backend, line: &[u8]) -> Reply {
    match Query::from_json(line) {
        Ok(query) => backend.handle(&query),
        Err(error) => {
            tracing::debug!(%error, "backend: undecodable request");
            Reply::refusal(format!("certadns-ddns: {error}"))
        }
    }
}

/// A reply as one line.
fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut bytes = reply.to_json();
    bytes.push(b'\n');
    bytes
}
