//! `certadns-ddns relay`: how a pdns on another host reaches the one backend.
//!
//! pdns runs this as the coprocess of its `pipe` connector
//! (`remote-connection-string=pipe:command=/usr/bin/certadns-ddns relay --connect HOST:PORT`),
//! one per pdns backend instance, and speaks line JSON on its stdin and stdout, as over the
//! unix socket. The relay carries each line over one TCP connection to `serve`'s
//! `backend-tcp-listen` and the answer back. Why not pdns's HTTP connector: before every call
//! on a kept-alive connection it waits 1 ms (under 1,000 calls a second per pdns thread), and
//! it cannot survive a connection closed under it; the pipe has neither limit.
//!
//! What it guarantees pdns:
//! * **An answer to every request, in time.** A request is retried on a new connection
//!   (every method the backend implements is idempotent) until it is answered or the wait
//!   runs out: `--wait-ms`, by default three quarters of the `timeout` pdns passes in
//!   `initialize`. A restart of `serve` within that wait is invisible to pdns.
//! * **pdns never exits because the backend is away.** pdns's communicator thread (NOTIFY to
//!   secondaries) ends the whole process on any backend error. When the backend stays
//!   unreachable, the calls it makes get a clean "nothing" (`getUpdatedMasters`: `[]`,
//!   metadata and `setNotified`: `false`), and only the calls that answer DNS queries, AXFR
//!   and the zone cache (`lookup`, `list`, `getAllDomains`, `getDomainInfo`) get an error
//!   (`"result": null`): a SERVFAIL, never a "no such name" that pdns would cache, nor an
//!   empty zone list. pdns then replaces this process, and the next one reconnects.
//!
//! * **It ends when pdns closes the pipe, and only then.** pdns's pipe connector never
//!   recovers from a coprocess that exited between two calls (that pdns thread answers SERVFAIL
//!   from then on), so nothing but the end of stdin ends the relay; and since pdns leaves the
//!   other relays' pipes open in each one it forks, the relay closes what it inherited at
//!   start, or the relays of a pdns that exited would hold each other's input open forever.
//!
//! * **It says when pdns has taken an answer in.** A purge must not reach pdns before an old
//!   answer still on its way (`inflight.rs`), and only this side of a slow link can tell. The
//!   relay opens each connection with a hello (`certadnsRelay`, its answer read with the first
//!   request's); the backend then asks, when a purge waits on this connection, with a
//!   `{"confirm":N}` line after the answer; the relay answers it once pdns has read everything
//!   on its pipe (at once while a request is in progress: pdns sent it after reading). Between
//!   requests it waits on both stdin and the connection for that.
//!
//! Nothing but answers ever goes to stdout; messages go to stderr (pdns's log).

use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::time::{Duration, Instant};

use crate::inflight::{CONFIRM_PREFIX, CONFIRMED_PREFIX, RELAY_HELLO};

/// Largest request line taken; pdns's are a few hundred bytes. Answers are not bounded.
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// The one answer to a request line longer than [`MAX_LINE_BYTES`].
const TOO_LONG: &[u8] = b"{\"result\":false,\"log\":[\"certadns-ddns relay: request too long\"]}\n";

/// The wait when pdns sets no timeout (`timeout=0`) and `--wait-ms` is not given.
const DEFAULT_WAIT: Duration = Duration::from_millis(1500);

/// The pause between two connection attempts while the backend is away.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// The least a `list` (a zone transfer) may wait for its answer: the backend builds the whole
/// zone before the first byte (about 14 MB for 100,000 names), which takes longer than a
/// lookup's `--wait-ms`; the secondary asking waits for its transfer anyway.
const LIST_WAIT: Duration = Duration::from_secs(60);

/// How the relay reaches the backend.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `HOST:PORT` of `serve`'s `backend-tcp-listen`; resolved at every connection attempt.
    pub connect: String,
    /// How long one request may wait for the backend; None: three quarters of pdns's
    /// `timeout`.
    pub wait: Option<Duration>,
}

/// Relays standard input to the backend and its answers to standard output until standard
/// input ends (pdns closed the pipe).
pub fn run(options: &RelayOptions) -> std::io::Result<()> {
    close_inherited_fds();
    let mut relay = Relay {
        options: options.clone(),
        wait: options.wait.unwrap_or(DEFAULT_WAIT),
        upstream: None,
        last_error: None,
    };
    // A reader of its own on fd 0, so that what it holds is known before waiting on both
    // sides (`StdinLock` does not say).
    let mut input = BufReader::new(std::fs::File::from(
        std::io::stdin().as_fd().try_clone_to_owned()?,
    ));
    let mut output = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        if input.buffer().is_empty() {
            relay.idle(input.get_ref().as_fd());
        }
        match next_request(&mut input, &mut line)? {
            Next::End => return Ok(()),
            Next::Blank => continue,
            Next::TooLong => {
                output.write_all(TOO_LONG)?;
                output.flush()?;
                continue;
            }
            Next::Request => {}
        }
        let mut reply = relay.answer(&line);
        if reply.last() != Some(&b'\n') {
            reply.push(b'\n');
        }
        output.write_all(&reply)?;
        output.flush()?;
    }
}

/// What [`next_request`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// pdns closed the pipe.
    End,
    /// Only whitespace: no request, no answer.
    Blank,
    /// Over the 64 KiB limit: read to its end (never taken for the next request) and answered
    /// once, with a refusal.
    TooLong,
    /// A request, in the line buffer.
    Request,
}

/// Reads pdns's next request line into `line` (cleared first), holding at most 64 KiB + 1
/// bytes of it whatever pdns sends: each line pdns sends is one
/// [`Next`] (one answer, or none for a blank one), however long.
pub fn next_request(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Next> {
    line.clear();
    let read = input.take(MAX_LINE_BYTES + 1).read_until(b'\n', line)?;
    Ok(if read == 0 {
        Next::End
    } else if line.len() as u64 > MAX_LINE_BYTES {
        if line.last() != Some(&b'\n') {
            input.skip_until(b'\n')?;
        }
        Next::TooLong
    } else if line.iter().all(u8::is_ascii_whitespace) {
        Next::Blank
    } else {
        Next::Request
    })
}

/// Closes every fd above stderr that this process inherited. pdns forks one relay per backend
/// instance and leaves the pipes of the relays started before open in each new one: every
/// relay then holds the write end of another's stdin, so when pdns exits none of them ever
/// reads the end of its input, and they live on as orphans. The relay needs nothing but its
/// standard streams (its sockets are opened later).
fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collected first: the listing's own fd is among the entries while it is read.
    let fds: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The listing's fd is closed by now (EBADF), as is any fd already gone.
        let _ = nix::unistd::close(fd);
    }
}

/// The relay's state: one connection to the backend, made when needed.
struct Relay {
    /// What it was started with.
    options: RelayOptions,
    /// How long a request may wait for the backend.
    wait: Duration,
    /// The connection, while it works.
    upstream: Option<Upstream>,
    /// Why the last attempt failed, for the message when the wait runs out.
    last_error: Option<String>,
}

/// A connection to the backend.
struct Upstream {
    /// Answers, read line by line.
    reader: BufReader<TcpStream>,
    /// Requests are written here (the same socket).
    writer: TcpStream,
    /// The socket's read and write timeouts as last set: set again only when a request's
    /// remaining time differs (a retry), not with two system calls on every request.
    timeout: Duration,
    /// The answer to the hello is still to be read (before the first request's).
    hello_unanswered: bool,
}

impl Relay {
    /// The answer line to one request line.
    fn answer(&mut self, line: &[u8]) -> Vec<u8> {
        // Only `initialize` is answered here: a cheap look for its name first, then a parse.
        if contains(line, br#""initialize""#) && method_of(line).as_deref() == Some("initialize") {
            // Answered here, so that pdns starts even while the backend is away. The options
            // of the connection string come as strings; `timeout` (ms) sets the wait.
            if self.options.wait.is_none() {
                if let Some(timeout) = timeout_of(line) {
                    self.wait = if timeout.is_zero() {
                        DEFAULT_WAIT
                    } else {
                        timeout * 3 / 4
                    };
                }
            }
            return br#"{"result":true}"#.to_vec();
        }
        // A cheap look for the name first; a parse only when it may be there.
        let wait = if contains(line, br#""list""#) && method_of(line).as_deref() == Some("list") {
            self.wait.max(LIST_WAIT)
        } else {
            self.wait
        };
        let deadline = Instant::now() + wait;
        loop {
            if let Some(reply) = self.try_once(line, deadline) {
                return reply;
            }
            let now = Instant::now();
            if now >= deadline {
                return self.unanswered(method_of(line).as_deref().unwrap_or("?"));
            }
            std::thread::sleep(RETRY_PAUSE.min(deadline - now));
        }
    }

    /// Waits for pdns's next request on `input`, answering meanwhile what the backend asks
    /// on the connection: whether pdns has taken in the answers so far (`inflight.rs`). A
    /// connection that ends or says anything else is dropped (the next request reconnects).
    fn idle(&mut self, input: BorrowedFd<'_>) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        while let Some(upstream) = &mut self.upstream {
            if upstream.reader.buffer().is_empty() {
                let mut fds = [
                    PollFd::new(input, PollFlags::POLLIN),
                    PollFd::new(upstream.writer.as_fd(), PollFlags::POLLIN),
                ];
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    return;
                }
                // Whatever came from the backend is taken first, even when pdns asks already:
                // a line left unread would be taken for the answer to pdns's next request.
                if !fds[1].any().unwrap_or(false) {
                    return;
                }
            }
            let mut question = Vec::new();
            let answered = match (&mut upstream.reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut question)
            {
                Ok(_) if question.starts_with(CONFIRM_PREFIX) => {
                    wait_until_read(std::io::stdout().as_fd());
                    confirm(&mut upstream.writer, &question)
                }
                _ => Err(std::io::ErrorKind::InvalidData.into()),
            };
            if answered.is_err() {
                self.upstream = None;
            }
        }
    }

    /// One attempt: (re)connect if needed, send, read the answer by `deadline`.
    fn try_once(&mut self, line: &[u8], deadline: Instant) -> Option<Vec<u8>> {
        let fresh = self.upstream.is_none();
        if fresh {
            match self.connect(deadline) {
                Ok(upstream) => self.upstream = Some(upstream),
                Err(error) => {
                    if error.kind() != std::io::ErrorKind::TimedOut || self.last_error.is_none() {
                        self.last_error = Some(error.to_string());
                    }
                    return None;
                }
            }
        }
        let upstream = self.upstream.as_mut().expect("connected above");
        match exchange(upstream, line, deadline) {
            Ok(reply) => {
                if self.last_error.take().is_some() {
                    eprintln!(
                        "certadns-ddns relay: backend {} reachable again",
                        self.options.connect
                    );
                }
                Some(reply)
            }
            Err(error) => {
                // The connection is unusable (closed by a restart, or a late answer would
                // now be out of step): drop it. An old connection is retried at once.
                self.upstream = None;
                self.last_error = Some(error.to_string());
                if fresh {
                    None
                } else {
                    self.try_once(line, deadline)
                }
            }
        }
    }

    /// Connects to the backend, trying each address the name resolves to.
    fn connect(&self, deadline: Instant) -> std::io::Result<Upstream> {
        let addresses: Vec<SocketAddr> = self.options.connect.to_socket_addrs()?.collect();
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the name resolves to no address",
        );
        for address in addresses {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // Out of time before this attempt: not a reason of its own (the caller keeps
                // the last attempt's, "Connection refused" say).
                last = std::io::ErrorKind::TimedOut.into();
                break;
            }
            match TcpStream::connect_timeout(&address, remaining) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(self.wait))?;
                    stream.set_write_timeout(Some(self.wait))?;
                    let keepalive = socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(60))
                        .with_interval(Duration::from_secs(10))
                        .with_retries(3);
                    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
                    // Says first that it answers the backend's questions; a backend that does
                    // not know the method answers `false` and never asks. The answer is read
                    // before the first request's, with no round trip of its own.
                    let mut writer = stream.try_clone()?;
                    let mut hello = RELAY_HELLO.to_vec();
                    hello.push(b'\n');
                    writer.write_all(&hello)?;
                    return Ok(Upstream {
                        reader: BufReader::new(stream),
                        writer,
                        timeout: self.wait,
                        hello_unanswered: true,
                    });
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// The answer when the backend could not be reached in time (see the module doc).
    fn unanswered(&self, method: &str) -> Vec<u8> {
        let why = self.last_error.as_deref().unwrap_or("no answer");
        let fails = matches!(
            method,
            "lookup" | "list" | "getAllDomains" | "getDomainInfo"
        );
        eprintln!(
            "certadns-ddns relay: backend {} not reachable within {} ms ({why}); {method} {}",
            self.options.connect,
            self.wait.as_millis(),
            if fails {
                "answered with an error (SERVFAIL)"
            } else {
                "answered with nothing"
            }
        );
        let reason = serde_json::to_string(&format!(
            "certadns-ddns relay: backend {} unreachable: {why}",
            self.options.connect
        ))
        .expect("a string serialises");
        let result = match method {
            _ if fails => "null",
            "getUpdatedMasters" | "getUnfreshSlaveInfos" => "[]",
            _ => "false",
        };
        format!(r#"{{"result":{result},"log":[{reason}]}}"#).into_bytes()
    }
}

/// Sends one request line and reads one answer line, both by `deadline`.
fn exchange(upstream: &mut Upstream, line: &[u8], deadline: Instant) -> std::io::Result<Vec<u8>> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    // A fresh request has (nearly) the whole wait left: the timeouts already set fit it.
    // Never more than what remains, and never more than 5 ms less.
    if remaining < upstream.timeout || remaining - upstream.timeout > Duration::from_millis(5) {
        upstream.writer.set_write_timeout(Some(remaining))?;
        upstream.writer.set_read_timeout(Some(remaining))?;
        upstream.timeout = remaining;
    }
    if line.last() == Some(&b'\n') {
        upstream.writer.write_all(line)?;
    } else {
        let mut terminated = line.to_vec();
        terminated.push(b'\n');
        upstream.writer.write_all(&terminated)?;
    }
    loop {
        let mut reply = Vec::new();
        if std::mem::take(&mut upstream.hello_unanswered) {
            (&mut upstream.reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut reply)?;
            reply.clear();
        }
        // An answer is as long as it is (`list` of a large zone is megabytes): only requests
        // are bounded.
        let read = upstream.reader.read_until(b'\n', &mut reply)?;
        if read == 0 || reply.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the backend closed the connection",
            ));
        }
        if reply.starts_with(CONFIRM_PREFIX) {
            // pdns sent this request, so it took in every answer before: confirmed at once.
            confirm(&mut upstream.writer, &reply)?;
            continue;
        }
        return Ok(reply);
    }
}

/// Answers the backend's question `question` (`{"confirm":N}`): everything before it was taken
/// in by pdns.
fn confirm(writer: &mut TcpStream, question: &[u8]) -> std::io::Result<()> {
    let question = question.trim_ascii_end();
    let mut confirmed = Vec::with_capacity(CONFIRMED_PREFIX.len() + question.len() + 2);
    confirmed.extend_from_slice(CONFIRMED_PREFIX);
    confirmed.extend_from_slice(question);
    confirmed.extend_from_slice(b"}\n");
    writer.write_all(&confirmed)
}

/// Longest wait for pdns to read what was written to it before a question is answered anyway.
const READ_WAIT: Duration = Duration::from_secs(1);

/// Waits until pdns has read everything written to `output` (its pipe holds nothing), at most
/// [`READ_WAIT`]. pdns reads each answer as soon as it comes: this is rarely more than a look.
fn wait_until_read(output: BorrowedFd<'_>) {
    let started = Instant::now();
    loop {
        let mut unread: nix::libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; `output` is open for the duration of the call.
        let done =
            unsafe { nix::libc::ioctl(output.as_raw_fd(), nix::libc::FIONREAD, &raw mut unread) };
        if done != 0 || unread == 0 || started.elapsed() >= READ_WAIT {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The `method` of a request line, if it is a JSON object with one.
fn method_of(line: &[u8]) -> Option<String> {
    /// Only the field the relay looks at.
    #[derive(serde::Deserialize)]
    struct Envelope {
        /// The remote-backend method.
        method: String,
    }
    serde_json::from_slice::<Envelope>(line)
        .ok()
        .map(|envelope| envelope.method)
}

/// The `timeout` option (ms, as a string) of an `initialize` request.
fn timeout_of(line: &[u8]) -> Option<Duration> {
    let request: serde_json::Value = serde_json::from_slice(line).ok()?;
    let timeout = &request["parameters"]["timeout"];
    let millis = match timeout {
        serde_json::Value::String(text) => text.trim().parse().ok()?,
        other => other.as_u64()?,
    };
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod test {
    use super::*;

    fn relay() -> Relay {
        Relay {
            options: RelayOptions {
                // Port 1 on loopback: nothing listens there.
                connect: "127.0.0.1:1".into(),
                wait: None,
            },
            wait: DEFAULT_WAIT,
            upstream: None,
            last_error: None,
        }
    }

    #[test]
    fn every_line_is_one_request_or_none_however_long() {
        let max = MAX_LINE_BYTES as usize;
        let mut input = Vec::new();
        for line in [
            vec![b'a'; max - 1],
            vec![b'b'; max],
            vec![b'c'; max + 1],
            vec![b'd'; 3 * max],
            b"  \t ".to_vec(),
            Vec::new(),
            b"{\"method\":\"lookup\"}".to_vec(),
        ] {
            input.extend(line);
            input.push(b'\n');
        }
        input.extend(vec![b'e'; 2 * max]);
        let mut reader = std::io::BufReader::new(input.as_slice());
        let mut line = Vec::new();
        let mut read = Vec::new();
        loop {
            let next = next_request(&mut reader, &mut line).unwrap();
            if next == Next::End {
                break;
            }
            read.push((next, line.first().copied()));
        }
        assert_eq!(
            read,
            [
                (Next::Request, Some(b'a')),
                (Next::TooLong, Some(b'b')),
                (Next::TooLong, Some(b'c')),
                (Next::TooLong, Some(b'd')),
                (Next::Blank, Some(b' ')),
                (Next::Blank, Some(b'\n')),
                (Next::Request, Some(b'{')),
                (Next::TooLong, Some(b'e')),
            ]
        );
    }

    #[test]
    fn initialize_is_answered_here_and_sets_the_wait_from_pdns_timeout() {
        let mut relay = relay();
        let answer = relay.answer(
            br#"{"method": "initialize", "parameters": {"command": "/x relay", "timeout": "2000"}}"#,
        );
        assert_eq!(answer, br#"{"result":true}"#);
        assert_eq!(relay.wait, Duration::from_millis(1500));
        relay.answer(br#"{"method": "initialize", "parameters": {"timeout": "0"}}"#);
        assert_eq!(relay.wait, DEFAULT_WAIT);
    }

    #[test]
    fn an_absent_backend_fails_only_what_answers_dns() {
        let mut relay = relay();
        relay.wait = Duration::from_millis(60);
        for (method, result) in [
            ("lookup", serde_json::Value::Null),
            ("list", serde_json::Value::Null),
            ("getAllDomains", serde_json::Value::Null),
            ("getDomainInfo", serde_json::Value::Null),
            ("getUpdatedMasters", serde_json::json!([])),
            ("getUnfreshSlaveInfos", serde_json::json!([])),
            ("setNotified", serde_json::json!(false)),
            ("getDomainMetadata", serde_json::json!(false)),
            ("getAllDomainMetadata", serde_json::json!(false)),
        ] {
            let started = Instant::now();
            let answer =
                relay.answer(format!(r#"{{"method": "{method}", "parameters": {{}}}}"#).as_bytes());
            assert!(started.elapsed() >= Duration::from_millis(60), "{method}");
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(answer["result"], result, "{method}");
            assert!(
                answer["log"][0].as_str().unwrap().contains("127.0.0.1:1"),
                "{answer}"
            );
        }
    }
}
