//! The ceiling for any remote backend: a minimal pdns remote backend that answers from a
//! HashMap and does nothing else (no storage, no validation, replies prepared at start-up).
//!
//! `benches/run.py` runs it next to certadns-ddns on the same zone: `dyn.example` with
//! `host0`..`host{N-1}` A records (TTL 60), SOA and NS, over the unix socket (line JSON) or
//! HTTP (`post=1,post_json=1`).
//!
//! Usage: ceiling --hosts N [--unix PATH] [--http ADDR]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The zone served.
const ZONE: &str = "dyn.example";

/// Prepared replies: name → (type, record JSON) pairs; plus the canned ones.
struct Answers {
    /// Records by lower-case name without the final dot.
    by_name: HashMap<String, Vec<(String, String)>>,
    /// `getAllDomains` / `getDomainInfo` reply bodies.
    domains: String,
    /// `getDomainInfo` reply.
    domain: String,
}

impl Answers {
    /// The zone with `hosts` A records.
    fn new(hosts: usize) -> Self {
        let record = |name: &str, qtype: &str, content: &str, ttl: u32| {
            (
                qtype.to_string(),
                json!({"qtype": qtype, "qname": format!("{name}."), "content": content, "ttl": ttl, "domain_id": 1, "auth": 1})
                    .to_string(),
            )
        };
        let mut by_name: HashMap<String, Vec<(String, String)>> = HashMap::with_capacity(hosts + 2);
        by_name.insert(
            ZONE.into(),
            vec![
                record(
                    ZONE,
                    "SOA",
                    "ns1.dyn.example. hostmaster.dyn.example. 2026010101 10800 3600 604800 60",
                    3600,
                ),
                record(ZONE, "NS", "ns1.dyn.example.", 3600),
            ],
        );
        for host in 0..hosts {
            let name = format!("host{host}.{ZONE}");
            let ip = format!("10.{}.{}.{}", host >> 16 & 255, host >> 8 & 255, host & 255);
            by_name.insert(name.clone(), vec![record(&name, "A", &ip, 60)]);
        }
        let info = json!({"id": 1, "zone": format!("{ZONE}."), "kind": "native", "serial": 2026010101, "notified_serial": 0, "last_check": 0, "masters": []});
        Self {
            by_name,
            domains: json!({"result": [info.clone()]}).to_string(),
            domain: json!({"result": info}).to_string(),
        }
    }

    /// The reply to one request object.
    fn answer(&self, request: &[u8]) -> String {
        let Ok(request) = serde_json::from_slice::<Value>(request) else {
            return r#"{"result":false}"#.into();
        };
        let parameters = &request["parameters"];
        match request["method"].as_str().unwrap_or_default() {
            "initialize" => r#"{"result":true}"#.into(),
            "lookup" => {
                let name = parameters["qname"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let qtype = parameters["qtype"].as_str().unwrap_or_default();
                let zone_id = parameters["zone-id"].as_i64().unwrap_or(-1);
                let Some(records) = self.by_name.get(&name) else {
                    return r#"{"result":false}"#.into();
                };
                let chosen: Vec<&str> = records
                    .iter()
                    .filter(|(record_type, _)| {
                        (qtype == "ANY" && zone_id != -1) || record_type == qtype
                    })
                    .map(|(_, json)| json.as_str())
                    .collect();
                if chosen.is_empty() {
                    r#"{"result":false}"#.into()
                } else {
                    format!("{{\"result\":[{}]}}", chosen.join(","))
                }
            }
            "getAllDomains" => self.domains.clone(),
            "getDomainInfo" => self.domain.clone(),
            "getAllDomainMetadata" => r#"{"result":{}}"#.into(),
            "getDomainMetadata" => r#"{"result":[]}"#.into(),
            _ => r#"{"result":false}"#.into(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let hosts: usize = value("--hosts")
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let answers = Arc::new(Answers::new(hosts));
    let mut servers = Vec::new();
    if let Some(path) = value("--unix") {
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind the unix socket");
        let answers = Arc::clone(&answers);
        servers.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let answers = Arc::clone(&answers);
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().expect("clone the stream");
                    let mut reader = BufReader::new(stream);
                    let mut line = Vec::new();
                    while reader
                        .read_until(b'\n', &mut line)
                        .map(|n| n > 0)
                        .unwrap_or(false)
                    {
                        let mut reply = answers.answer(&line).into_bytes();
                        reply.push(b'\n');
                        if writer.write_all(&reply).is_err() {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        }));
    }
    if let Some(address) = value("--http") {
        let answers = Arc::clone(&answers);
        servers.push(std::thread::spawn(move || serve_http(&address, answers)));
    }
    eprintln!("ceiling backend ready: {hosts} hosts");
    for server in servers {
        let _ = server.join();
    }
}

/// Serves `post_json` requests on `address`.
fn serve_http(address: &str, answers: Arc<Answers>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind HTTP");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let answers = Arc::clone(&answers);
                    async move {
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let reply = answers.answer(&body);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(reply))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
