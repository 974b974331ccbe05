//! The metrics listener's answers (`metrics-listen`, off by default): `/metrics` in the
//! OpenMetrics text format, `/health/live` and `/health/ready`.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};

use super::response::{Answer, text};
use crate::metrics::metrics;

/// Answers the metrics listener: `/metrics`, `/health/live`, `/health/ready` (whose problems
/// `ready` returns; none is ready).
pub async fn answer<F, Fut>(request: &Request<hyper::body::Incoming>, ready: F) -> Answer
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, &metrics().encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/health/live" => text(StatusCode::OK, "live\n"),
        "/health/ready" => {
            let problems = ready().await;
            if problems.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                let lines: String = problems
                    .iter()
                    .map(|problem| format!("{problem}\n"))
                    .collect();
                text(StatusCode::SERVICE_UNAVAILABLE, &lines)
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
