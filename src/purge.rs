//! Telling pdns front-ends to forget what they cached for names that changed.
//!
//! With its packet and query caches on, pdns would serve an old address for up to `cache-ttl`
//! (20 s) and keep a new name negative for `negquery-cache-ttl` (60 s). After each committed
//! change, [`Purger::purge`] asks every configured pdns, through its HTTP API
//! (`PUT /api/v1/servers/<id>/cache/flush?domain=<name>.`), to drop the name and everything
//! below it. For a new zone the same call also makes pdns look the zone up (getDomainInfo) and
//! add it to its zone cache, so the zone is answerable at once.
//!
//! A purge never turns a committed change into an error: failures are logged and retried a
//! bounded number of times in the background. The caller waits only for the first attempt, and
//! at most a bounded time (`purge-wait-ms`), so a client's next query is fresh while a slow or
//! dead pdns API cannot hold its answer.

use std::sync::Arc;
use std::time::Duration;

use crate::config::PdnsApi;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Delays before the retries of a failed purge.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// Time allowed for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Purges names on every configured pdns. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Purger {
    /// The front-ends.
    targets: Arc<Vec<PdnsApi>>,
    /// A pooled HTTP/1.1 client (keep-alive to each API).
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Purger {
    /// A purger for `targets`, or None when there are none (nothing to do on changes).
    pub fn new(targets: &[PdnsApi]) -> Option<Self> {
        if targets.is_empty() {
            return None;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CALL_TIMEOUT));
        Some(Self {
            targets: Arc::new(targets.to_vec()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Purges `names` (lower case, no final dot; each with everything below it) on every
    /// front-end. Resolves when each front-end's first attempt is over, whatever its outcome;
    /// failed ones go on being retried in the background. Never fails.
    pub async fn purge(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let names = Arc::new(names);
        let mut first_attempts = Vec::new();
        for target in 0..self.targets.len() {
            let (done, first_attempt) = tokio::sync::oneshot::channel();
            let purger = self.clone();
            let names = Arc::clone(&names);
            tokio::spawn(async move { purger.purge_target(target, &names, done).await });
            first_attempts.push(first_attempt);
        }
        for first_attempt in first_attempts {
            let _ = first_attempt.await;
        }
    }

    /// Like [`Purger::purge`], but resolves only when every retry is over: for short-lived
    /// processes (the admin CLI), which would otherwise drop the retries.
    pub async fn purge_with_retries(&self, names: Vec<String>) {
        let mut runs = tokio::task::JoinSet::new();
        for target in 0..self.targets.len() {
            let (done, _) = tokio::sync::oneshot::channel();
            let purger = self.clone();
            let names = names.clone();
            runs.spawn(async move { purger.purge_target(target, &names, done).await });
        }
        while runs.join_next().await.is_some() {}
    }

    /// Purges `names` on front-end number `target`, with retries; reports the first attempt on
    /// `done`.
    async fn purge_target(
        &self,
        target: usize,
        names: &[String],
        done: tokio::sync::oneshot::Sender<()>,
    ) {
        let target = &self.targets[target];
        let mut done = Some(done);
        let mut pending: Vec<&String> = names.iter().collect();
        for attempt in 0..=RETRY_DELAYS.len() {
            let mut failed = Vec::new();
            for name in pending {
                if let Err(error) = self.flush(target, name).await {
                    tracing::debug!(api = %target.api_url, %name, attempt, %error, "pdns cache purge failed");
                    failed.push((name, error));
                }
            }
            if let Some(done) = done.take() {
                let _ = done.send(());
            }
            if failed.is_empty() {
                return;
            }
            if let Some(delay) = RETRY_DELAYS.get(attempt) {
                tokio::time::sleep(*delay).await;
                pending = failed.into_iter().map(|(name, _)| name).collect();
            } else {
                for (name, error) in failed {
                    tracing::warn!(
                        api = %target.api_url,
                        %name,
                        %error,
                        "pdns cache purge failed after retries; the old answer may be served until pdns's cache TTL passes"
                    );
                }
                return;
            }
        }
    }

    /// One `cache/flush` call.
    async fn flush(&self, target: &PdnsApi, name: &str) -> Result<(), String> {
        let domain = utf8_percent_encode(&format!("{name}."), NON_ALPHANUMERIC).to_string();
        let uri = format!(
            "{}/api/v1/servers/{}/cache/flush?domain={domain}",
            target.api_url.trim_end_matches('/'),
            target.server_id
        );
        let request = Request::builder()
            .method(Method::PUT)
            .uri(&uri)
            .header("X-API-Key", &target.api_key)
            .body(Empty::new())
            .map_err(|error| format!("bad API URL {uri:?}: {error}"))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|error| error.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|body| {
                String::from_utf8_lossy(&body.to_bytes())
                    .chars()
                    .take(200)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Err(format!("HTTP {status}: {body}"))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn keys_never_show_in_debug_output() {
        let target = PdnsApi {
            api_url: "http://127.0.0.1:8082".into(),
            api_key: "s3cret-api-key".into(),
            server_id: "localhost".into(),
        };
        assert!(!format!("{target:?}").contains("s3cret"));
        assert!(Purger::new(&[]).is_none());
    }

    #[tokio::test]
    async fn a_dead_api_does_not_hold_the_caller_beyond_the_first_attempt() {
        // A port nobody listens on: the first attempt fails at once (connection refused).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let purger = Purger::new(&[PdnsApi {
            api_url: format!("http://{address}"),
            api_key: "k".into(),
            server_id: "localhost".into(),
        }])
        .unwrap();
        let started = std::time::Instant::now();
        purger.purge(vec!["home.dyn.example".into()]).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
