//! A request of pdns's HTTP connector in any of its styles (REST path with
//! `X-RemoteBackend-*` headers, `post` form, `post_json`), decoded and answered from a real
//! store.
//!
//! Input: fields separated by NUL bytes: flags (first byte: bits 0-1 the method GET, POST,
//! PATCH, DELETE; bit 2 a form body), the path after `/dns`, the body, then headers as
//! `name: value` (`fuzz/seed.py` writes seeds in this form from the captured pdns traffic).
#![no_main]

use certadns_ddns::backend::decode_request;
use hyper::Method;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flags, mut fields) = certadns_ddns_fuzz::fields(data);
    let Some(rest) = fields
        .next()
        .and_then(|field| std::str::from_utf8(field).ok())
    else {
        return;
    };
    let body = fields.next().unwrap_or_default();
    let method = match flags & 3 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PATCH,
        _ => Method::DELETE,
    };
    let mut headers = HeaderMap::new();
    if flags & 4 == 4 {
        headers.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
    }
    for header in fields {
        let text = String::from_utf8_lossy(header);
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    if let Ok(query) = decode_request(&method, rest, &headers, body) {
        let json = certadns_ddns_fuzz::backend().handle(&query).to_json();
        assert!(json.starts_with(b"{") && json.ends_with(b"}") && !json.contains(&b'\n'));
    }
});
