//! What the fuzz targets share: the input format of the structured targets, and a real store
//! with a zone in it, for the backend targets to answer from (decoding alone would leave
//! `Backend::handle` unfuzzed).

use std::sync::OnceLock;

use certadns_ddns::backend::Backend;
use certadns_ddns::model::rdata::StaticType;
use certadns_ddns::model::{DomainName, Plan, RecordType};
use certadns_ddns::served::Served;
use certadns_ddns::store::audit::ChangeContext;
use certadns_ddns::store::{Store, StoreOptions, domains, records, users, zones};

/// Splits a structured target's input: fields separated by NUL bytes, the first byte of the
/// first field being flags (0 when missing). `fuzz/seed.py` writes seeds in this form.
pub fn fields(data: &[u8]) -> (u8, impl Iterator<Item = &[u8]>) {
    let mut fields = data.split(|byte| *byte == 0);
    let flags = fields
        .next()
        .and_then(|flags| flags.first().copied())
        .unwrap_or(0);
    (flags, fields)
}

/// A backend over a store in a temporary directory (kept for the process's life), holding
/// zone `example.com` with a DDNS domain of each type, a wildcard and static records, and a
/// second zone; with the served index, as `serve` runs it.
pub fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| Backend::new(served().clone()))
}

/// The store of [`backend`], with the served index (and zone histories, for IXFR), as `serve`
/// runs it.
pub fn served() -> &'static Served {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
        let store = Store::open(&dir.path().join("fuzz.db"), &StoreOptions::default())
            .expect("open the store");
        store
            .write(|tx| {
                let name = |text: &str| text.parse::<DomainName>().expect("a valid name");
                let now = "2026-01-01T00:00:00.000Z";
                for zone in ["example.com", "sub.example.com"] {
                    zones::insert_zone(
                        tx,
                        &name(zone),
                        &[name("ns1.example.com"), name("ns2.example.net")],
                        None,
                        zones::SoaTimers::default(),
                        now,
                    )?;
                }
                let zone = zones::get_zone_by_name(tx, "example.com")?.expect("just added");
                let user =
                    users::insert_user(tx, "fuzz", "fuzz@example.com", "$phc", Plan::Plus, now)?;
                for (host, record_type, ip) in [
                    ("home.example.com", RecordType::A, "192.0.2.1"),
                    ("home.example.com", RecordType::Aaaa, "2001:db8::1"),
                ] {
                    let id =
                        domains::insert_domain(tx, &name(host), user, zone.id, record_type, now)?;
                    let domain = domains::get_domain(tx, id)?;
                    domains::change_address(
                        tx,
                        &domain,
                        ip.parse().expect("an address"),
                        &ChangeContext::admin(),
                        now,
                    )?;
                }
                for (owner, record_type, content) in [
                    ("*.wild.example.com", StaticType::A, "192.0.2.9"),
                    ("example.com", StaticType::Mx, "10 mail.example.com."),
                    ("example.com", StaticType::Txt, "\"v=spf1 -all\""),
                    (
                        "_sip._udp.example.com",
                        StaticType::Srv,
                        "10 5 5060 sip.example.com.",
                    ),
                ] {
                    records::insert_record(tx, &zone, owner, record_type, content, 300, now)?;
                }
                Ok(())
            })
            .expect("seed the store");
        let served = Served::open(store).expect("the served index");
        served.keep_zone_history(certadns_ddns::served::history::HistoryLimits {
            age: std::time::Duration::from_secs(3600),
            records: 1000,
        });
        served
    })
}
