//! Static record content and owner names as an admin may type them (`record add`): parsed and
//! normalised, and a normalised content normalises to itself.
//!
//! Input: fields separated by NUL bytes: the type (first byte, one of the eight), the content,
//! the owner name relative to `example.com`.
#![no_main]

use certadns_ddns::model::DomainName;
use certadns_ddns::model::rdata::{StaticType, normalize_content, resolve_owner_name};
use libfuzzer_sys::fuzz_target;

const TYPES: [StaticType; 8] = [
    StaticType::A,
    StaticType::Aaaa,
    StaticType::Cname,
    StaticType::Mx,
    StaticType::Txt,
    StaticType::Ns,
    StaticType::Srv,
    StaticType::Caa,
];

fuzz_target!(|data: &[u8]| {
    let (which, mut fields) = certadns_ddns_fuzz::fields(data);
    let record_type = TYPES[usize::from(which) % TYPES.len()];
    let content = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let owner = String::from_utf8_lossy(fields.next().unwrap_or_default());
    if let Ok(normalized) = normalize_content(record_type, &content) {
        assert_eq!(
            normalize_content(record_type, &normalized).as_deref(),
            Ok(normalized.as_str()),
            "normalising is idempotent"
        );
    }
    let zone: DomainName = "example.com".parse().unwrap();
    if let Ok(owner) = resolve_owner_name(&zone, &owner) {
        assert!(
            owner == "example.com" || owner.ends_with(".example.com"),
            "{owner}"
        );
    }
    let _ = owner.parse::<DomainName>();
});
