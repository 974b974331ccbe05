//! The answers every part of the update listener builds: plain text, HTML, JSON, redirects,
//! 405, and the headers of the account holder's pages. `Full` bodies have a known length, so
//! hyper frames them with `Content-Length`, never chunked.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// An answer of the update listener.
pub type Answer = Response<Full<Bytes>>;

/// A plain-text answer, not to be cached.
pub fn text(status: StatusCode, body: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON answer, not to be cached.
pub fn json(status: StatusCode, body: &str) -> Answer {
    let mut response = text(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTML page (the account holder's pages add [`page_headers`]).
pub fn html(status: StatusCode, body: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    answer
}

/// A 303 to `location` (after a form, the browser GETs it).
pub fn redirect(location: &'static str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::SEE_OTHER;
    answer
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    answer
}

/// A 405 naming the allowed methods (`Allow`, as RFC 9110 §15.5.6 requires).
pub fn method_not_allowed(allowed: &str) -> Answer {
    let mut answer = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    if let Ok(value) = HeaderValue::from_str(allowed) {
        answer.headers_mut().insert(header::ALLOW, value);
    }
    answer
}

/// The Basic challenge sent with `badauth`: clients that wait for a challenge before sending
/// credentials need it.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"certadns-ddns\", charset=\"UTF-8\"";

/// A 401 with `body` and the Basic challenge.
pub fn unauthorized(body: &str) -> Answer {
    let mut answer = text(StatusCode::UNAUTHORIZED, body);
    with_basic_challenge(&mut answer);
    answer
}

/// Adds the Basic challenge to `answer`.
pub fn with_basic_challenge(answer: &mut Answer) {
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(BASIC_CHALLENGE),
    );
}

/// 404, plain.
pub fn not_found() -> Answer {
    text(StatusCode::NOT_FOUND, "not found")
}

/// The headers of every answer under `/dashboard`: the Content-Security-Policy `csp`, no
/// caching, no sniffing, no framing, no referrer to other sites (`no-referrer` would make
/// browsers send `Origin: null` on the pages' own forms).
pub fn page_headers(headers: &mut HeaderMap, csp: &'static str) {
    let pairs: [(&str, &'static str); 6] = [
        ("content-security-policy", csp),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
}
