//! Load for an RFC 2136 server, as `wrk` is for the update endpoints: `--connections` TCP
//! connections (external-dns, certbot and `nsupdate -v` speak TCP), each sending one UPDATE
//! at a time, every one TSIG-signed (hmac-sha256) and setting `hostH.ZONE`'s A to an address
//! it does not have yet (`good`): "delete the A RRset, add one A", as ddclient sends it.
//! Prints the updates a second and the answers by RCODE; `benches/run.py` runs it against
//! certadns-ddns and against pdns's own `dnsupdate=yes` on gsqlite3.
//!
//! The messages are built and signed before the clock starts (a TSIG signature holds for the
//! fudge, 300 s), so that during the run the tool costs what `wrk` costs: a write and a read
//! per request, on the same two cores as the server.
//!
//! Usage: dnsupdate --server ADDR --zone ZONE --key NAME --secret BASE64 [--hosts N]
//!        [--seconds S] [--connections C] [--run R]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The value after `flag`, or `default`.
fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter()
        .position(|arg| arg == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// The signed UPDATE setting host `h`'s A to the address of its `visit`-th change in `run`.
fn update(signer: &TSigner, zone: &Name, h: u64, visit: u64, run: u64, id: u16) -> Vec<u8> {
    let mut message = Message::new();
    message.set_id(id).set_op_code(OpCode::Update);
    let mut section = Query::query(zone.clone(), RecordType::SOA);
    section.set_query_class(DNSClass::IN);
    message.add_query(section);
    let host = Name::from_ascii(format!("host{h}"))
        .and_then(|label| label.append_domain(zone))
        .expect("a host name");
    let mut delete = Record::update0(host.clone(), 0, RecordType::A);
    delete.set_dns_class(DNSClass::ANY);
    message.add_name_server(delete);
    // 172.16-31.x.y, as the HTTP bench's `good` does: another second octet each visit and run.
    let ip = std::net::Ipv4Addr::new(
        172,
        u8::try_from(16 + (4 * run + visit) % 16).expect("small"),
        u8::try_from(h / 250 % 250).expect("small"),
        u8::try_from(h % 250 + 1).expect("small"),
    );
    message.add_name_server(Record::from_rdata(host, 60, RData::A(A(ip))));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    message
        .finalize(signer, u32::try_from(now).expect("before 2106"))
        .expect("signed");
    message.to_vec().expect("encoded")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server: std::net::SocketAddr = arg(&args, "--server", "127.0.0.1:5353")
        .parse()
        .expect("--server ADDR");
    let zone =
        Name::from_ascii(format!("{}.", arg(&args, "--zone", "bench.example"))).expect("--zone");
    let secret = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        arg(&args, "--secret", ""),
    )
    .expect("--secret BASE64");
    let key = Name::from_ascii(format!("{}.", arg(&args, "--key", "bench"))).expect("--key");
    let hosts: u64 = arg(&args, "--hosts", "100000").parse().expect("--hosts");
    let seconds: u64 = arg(&args, "--seconds", "10").parse().expect("--seconds");
    let connections: usize = arg(&args, "--connections", "64")
        .parse()
        .expect("--connections");
    let run: u64 = arg(&args, "--run", "0").parse().expect("--run");
    let signer = TSigner::new(secret, TsigAlgorithm::HmacSha256, key, 300).expect("a signer");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let counter = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let rcodes: Arc<std::sync::Mutex<BTreeMap<u8, u64>>> = Arc::default();
    // Enough for 40,000 updates a second; each a new address for its host.
    let prepared: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..40_000 * seconds)
            .map(|n| {
                let message = update(&signer, &zone, n % hosts, n / hosts, run, n as u16);
                let mut framed = u16::try_from(message.len())
                    .expect("short")
                    .to_be_bytes()
                    .to_vec();
                framed.extend_from_slice(&message);
                framed
            })
            .collect(),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (prepared, counter, rcodes, closed) = (
                Arc::clone(&prepared),
                Arc::clone(&counter),
                Arc::clone(&rcodes),
                Arc::clone(&closed),
            );
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(server)
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut answer = vec![0_u8; 65_535];
                // A connection the server closes before the end is counted, not hidden.
                let cut = || {
                    closed.fetch_add(1, Ordering::Relaxed);
                };
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let Some(framed) = prepared.get(usize::try_from(n).expect("fits")) else {
                        break;
                    };
                    if stream.write_all(framed).await.is_err() {
                        cut();
                        break;
                    }
                    let mut length = [0_u8; 2];
                    if stream.read_exact(&mut length).await.is_err() {
                        cut();
                        break;
                    }
                    let length = usize::from(u16::from_be_bytes(length));
                    if stream.read_exact(&mut answer[..length]).await.is_err() {
                        cut();
                        break;
                    }
                    let rcode = answer.get(3).map_or(255, |flags| flags & 0x0f);
                    *rcodes
                        .lock()
                        .expect("not poisoned")
                        .entry(rcode)
                        .or_default() += 1;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    // Over the whole window: connections cut early must not make the rate look higher.
    let elapsed = started.elapsed().as_secs_f64().max(seconds as f64);
    let rcodes = rcodes.lock().expect("not poisoned");
    let answered: u64 = rcodes.values().sum();
    let noerror = rcodes.get(&0).copied().unwrap_or(0);
    use std::io::Write as _;
    writeln!(
        std::io::stdout(),
        "{{\"updates_per_second\": {:.1}, \"answered\": {answered}, \"noerror\": {noerror}, \"rcodes\": {:?}, \"connections_cut\": {}}}",
        noerror as f64 / elapsed,
        format!("{rcodes:?}"),
        closed.load(Ordering::Relaxed)
    )
    .expect("stdout");
}
