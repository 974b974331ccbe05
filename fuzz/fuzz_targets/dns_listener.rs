//! Any message to the DNS listener over TCP, from an address `[transfers] allow-from` admits,
//! answered from a real store (the zones of `fuzz/src/lib.rs`): queries, transfers (AXFR,
//! IXFR with any serial), NOTIFY, UPDATE, signed or not. Every message of the answer reads
//! back and fits TCP's two-byte length, and a transfer that succeeds starts and ends with its
//! zone's SOA.
#![no_main]

use std::sync::OnceLock;

use certadns_ddns::abuse::UpdateRateGuard;
use certadns_ddns::config::{Config, LiveSections};
use certadns_ddns::intel::IpIntel;
use certadns_ddns::purge::Purging;
use certadns_ddns::rfc2136::{Answer, DnsUpdates};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;

fn listener() -> &'static (tokio::runtime::Runtime, DnsUpdates) {
    static LISTENER: OnceLock<(tokio::runtime::Runtime, DnsUpdates)> = OnceLock::new();
    LISTENER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut config = Config::default();
        config.transfers.allow_from = vec!["127.0.0.0/8".parse().expect("a network")];
        let updates = DnsUpdates::new(
            certadns_ddns_fuzz::served().clone(),
            std::sync::Arc::new(UpdateRateGuard::new(None)),
            Purging::default(),
            IpIntel::none(),
            &LiveSections::new(&config),
        );
        (runtime, updates)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, updates) = listener();
    runtime.block_on(async {
        let client = "127.0.0.1".parse().expect("an address");
        let messages = match updates.answer_tcp(data, client).await {
            None => return,
            Some(Answer::One(message)) => vec![message],
            Some(Answer::Stream(mut stream)) => {
                let mut messages = Vec::new();
                while let Some(message) = stream.recv().await {
                    messages.push(message);
                }
                messages
            }
        };
        let mut records = Vec::new();
        for message in &messages {
            assert!(message.len() <= 65_535, "a message of {} bytes", message.len());
            let read = Message::from_vec(message).expect("every message reads back");
            if read.response_code() != ResponseCode::NoError {
                return;
            }
            records.extend(read.answers().iter().map(|record| record.record_type()));
        }
        let asked = Message::from_vec(data).ok().and_then(|request| {
            request.queries().first().map(|query| query.query_type())
        });
        if matches!(asked, Some(RecordType::AXFR | RecordType::IXFR)) && !records.is_empty() {
            assert_eq!(records.first(), Some(&RecordType::SOA), "a transfer starts with the SOA");
            assert_eq!(records.last(), Some(&RecordType::SOA), "and ends with it");
        }
    });
});
