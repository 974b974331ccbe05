//! A DNS message with a TSIG record as it arrives from anyone (the RFC 2136 listener's first
//! check): read without panicking, and taken only with the right MAC. The key is fixed and the
//! clock is the seed's signing time, so a mutated message that still verifies would be a MAC
//! collision.
#![no_main]

use certadns_ddns::auth::tsig::verify;
use certadns_ddns::model::tsig::{TsigAlgorithm, TsigKey, TsigScope};
use libfuzzer_sys::fuzz_target;

/// The seed's key (`fuzz/seed.py`).
fn key() -> TsigKey {
    TsigKey {
        id: 1,
        name: "alice-key".into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
        scope: TsigScope::Account { user_id: 1 },
        is_active: true,
        created_at: "t".into(),
        last_used_at: None,
    }
}

fuzz_target!(|data: &[u8]| {
    // The seed was signed at 0x6b157c28 (Dec 2026).
    if let Ok(verified) = verify(data, 0x6b15_7c28, |name| {
        Ok((name == "alice-key").then(key))
    }) {
        assert_eq!(verified.key.name, "alice-key");
        assert_eq!(verified.mac.len(), 32);
    }
});
