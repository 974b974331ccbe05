//! Request bodies, bounded: at most a configured size, within a configured time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header;

use super::response::{Answer, text};

/// How much body a request may send, and how fast (`[updates] max-body-bytes`,
/// `body-read-timeout-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body accepted.
    pub max_bytes: usize,
    /// Time allowed to receive it.
    pub timeout: Duration,
}

impl From<&crate::config::Updates> for BodyLimits {
    /// `max-body-bytes` and `body-read-timeout-secs`.
    fn from(updates: &crate::config::Updates) -> Self {
        Self {
            max_bytes: updates.max_body_bytes,
            timeout: updates.body_read_timeout,
        }
    }
}

/// Reads a request body within `limits`; `Err` holds the answer to a body too large (413,
/// also when its declared length is), too slow (408) or malformed (400).
pub async fn collect(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    limits: BodyLimits,
) -> Result<Bytes, Answer> {
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    let limited = Limited::new(body, limits.max_bytes);
    match tokio::time::timeout(limits.timeout, limited.collect()).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
        Ok(Err(_)) => Err(text(StatusCode::BAD_REQUEST, "malformed request body")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Whether the request declares a form body (`application/x-www-form-urlencoded`), or no
/// content type at all (some routers send a form without one).
pub fn is_form(parts: &hyper::http::request::Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}
