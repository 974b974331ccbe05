//! The raw HTTP/1.1 client: tests check the bytes on the wire and send what no well-behaved
//! client library would.

use super::*;

/// An `Authorization: Basic` value.
pub fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts status and body together, showing both on failure.
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (status, body),
            "response: {self:?}"
        );
    }
}

/// A TCP connection to `target` from the loopback address `source` (127.0.0.2, ...): a
/// distinct client, as the service counts clients. Reads time out after 30 s.
pub fn connect_from(source: [u8; 4], target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&target.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// Sends one remote-backend request object over a fresh unix connection; returns the reply.
pub fn unix_call(socket: &std::path::Path, request: &serde_json::Value) -> serde_json::Value {
    let stream = std::os::unix::net::UnixStream::connect(socket).expect("connect the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone the socket");
    writeln!(writer, "{request}").expect("send the request");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("read the reply");
    serde_json::from_str(&line).expect("a JSON reply")
}

/// Writes `raw` to a new connection and reads the whole answer (until the server closes).
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // The server may answer and close before reading everything (e.g. an oversized head).
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_response(&bytes)
}

/// Parses one HTTP/1.1 response framed by `Content-Length`, checking the framing.
pub fn parse_response(bytes: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_string(),
    };
    assert_eq!(response.header("transfer-encoding"), None, "never chunked");
    let length: usize = response
        .header("content-length")
        .expect("Content-Length always set")
        .parse()
        .expect("numeric Content-Length");
    assert_eq!(
        length,
        response.body.len(),
        "Content-Length frames the body exactly"
    );
    response
}

/// One remote-backend call over the HTTP connector, as pdns sends it (`post_json`), on a new
/// connection.
pub fn backend_call(backend: SocketAddr, request: &serde_json::Value) -> HttpResponse {
    let body = request.to_string();
    send_raw(
        backend,
        format!(
            "POST /dns HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/javascript\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The value of the metric sample that starts with `name_and_labels` in the text format.
pub fn metric_sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The contents of the `qtype` records served at `name`, as pdns's HTTP connector gets them
/// from `backend` (a `lookup` call), sorted.
pub fn backend_contents(backend: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let answer = backend_call(
        backend,
        &serde_json::json!({"method": "lookup", "parameters": {
            "qname": format!("{name}."), "qtype": qtype, "zone-id": -1}}),
    );
    let reply: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON reply");
    let mut contents: Vec<String> = reply["result"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|record| record["content"].as_str().expect("content").to_string())
                .collect()
        })
        .unwrap_or_default();
    contents.sort();
    contents
}
