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
//!
//! In the daemon, each front-end has one queue and one task: names to purge are merged into
//! a set (a name asked again while it waits is purged once), at most `MAX_PENDING` of them
//! (beyond that, the whole cache is flushed instead), and the task calls the API one call at a
//! time on one kept-alive connection. So an update flood against a dead or black-holed API
//! holds one task, one socket and a bounded set per front-end; when a call fails, the rest of
//! that batch waits for the retry instead of each timing out in turn.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::PdnsApi;
use crate::inflight::InFlight;
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

/// After a purge was given up, how often a whole-cache flush is tried until one succeeds.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Time allowed for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Most names waiting for one front-end; past that its whole cache is flushed (`.`).
const MAX_PENDING: usize = 10_000;

/// Most callers waiting on one front-end's next attempt; later ones do not wait.
const MAX_WAITERS: usize = 4_096;

/// Purges names on every configured pdns. Cheap to clone.
/// The purger in use and how long an answer waits for a purge's first attempt, shared by
/// everything that answers after a change (the update and ACME endpoints, the challenge
/// expiry) and replaced by a reload (SIGHUP). Cheap to clone: every clone sees the same.
#[derive(Clone, Debug, Default)]
pub struct Purging(Arc<arc_swap::ArcSwapOption<(Purger, Duration)>>);

impl Purging {
    /// Purges with `purging` from the next change on (None: no purges), in every clone.
    pub fn set(&self, purging: Option<(Purger, Duration)>) {
        self.0.store(purging.map(Arc::new));
    }

    /// The purger and wait in use, if any.
    pub fn get(&self) -> Option<(Purger, Duration)> {
        self.0.load_full().map(|purging| (*purging).clone())
    }

    /// Purges `names` from pdns's caches, waiting at most the configured wait
    /// (`purge-wait-ms`) for the first attempt (the purge goes on in the background if it
    /// takes longer).
    pub async fn purge(&self, names: Vec<String>) {
        if let Some(purging) = self.0.load_full() {
            let (purger, wait) = &*purging;
            let _ = tokio::time::timeout(*wait, purger.purge(names)).await;
        }
    }
}

#[derive(Clone, Debug)]
pub struct Purger {
    /// The front-ends.
    targets: Arc<Vec<PdnsApi>>,
    /// A pooled HTTP/1.1 client (keep-alive to each API).
    client: Client<HttpConnector, Empty<Bytes>>,
    /// One queue per front-end, in the order of `targets` (the daemon's path).
    queues: Arc<Vec<Queue>>,
    /// Replaced by another purger (a reload changed `[[pdns.api]]`): the queues' tasks end.
    retired: Arc<std::sync::atomic::AtomicBool>,
    /// The backend's answers that may not have reached pdns yet: a batch waits for those of
    /// its names before it is purged, or they would be cached after it.
    inflight: Option<Arc<InFlight>>,
}

/// What waits for one front-end's task.
#[derive(Debug, Default)]
struct Queue {
    /// Names and waiters not yet taken by the task.
    pending: Mutex<Pending>,
    /// Wakes the task.
    wake: tokio::sync::Notify,
    /// The task has been started.
    started: std::sync::atomic::AtomicBool,
}

/// Names waiting to be purged on one front-end.
#[derive(Debug, Default)]
struct Pending {
    /// The names (merged).
    names: BTreeSet<String>,
    /// Too many names came: flush everything instead.
    everything: bool,
    /// Told when the attempt that takes these names is over.
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
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
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build(connector),
            queues: Arc::new(targets.iter().map(|_| Queue::default()).collect()),
            retired: Arc::default(),
            inflight: None,
        })
    }

    /// This purger, each batch of which first waits for the answers of `inflight` to its names
    /// (see `inflight.rs`).
    #[must_use]
    pub fn after_answers(mut self, inflight: Arc<InFlight>) -> Self {
        self.inflight = Some(inflight);
        self
    }

    /// The front-ends it purges.
    pub fn targets(&self) -> &[PdnsApi] {
        &self.targets
    }

    /// Ends the queues' tasks (a reload put another purger in this one's place): each one
    /// answers its waiters and stops at its next wake-up, leaving its retries.
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        for queue in self.queues.iter() {
            queue.wake.notify_one();
        }
    }

    /// Purges `names` (lower case, no final dot; each with everything below it) on every
    /// front-end, through its queue. Resolves when each front-end's attempt that takes these
    /// names is over, whatever its outcome; failed names go on being retried in the
    /// background. Never fails. Must run inside a tokio runtime (it starts the queues' tasks).
    pub async fn purge(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let mut attempts = Vec::new();
        for (target, queue) in self.queues.iter().enumerate() {
            {
                let mut pending = queue
                    .pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if !pending.everything {
                    pending.names.extend(names.iter().cloned());
                    if pending.names.len() > MAX_PENDING {
                        pending.names.clear();
                        pending.everything = true;
                    }
                }
                if pending.waiters.len() < MAX_WAITERS {
                    let (done, attempt) = tokio::sync::oneshot::channel();
                    pending.waiters.push(done);
                    attempts.push(attempt);
                }
            }
            if !queue
                .started
                .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                let purger = self.clone();
                tokio::spawn(async move { purger.run_queue(target).await });
            }
            queue.wake.notify_one();
        }
        for attempt in attempts {
            let _ = attempt.await;
        }
    }

    /// The task of front-end number `target`: takes what is pending, one batch at a time.
    ///
    /// A name given up after its retries (the API down for seconds) leaves the front-end's
    /// cache possibly stale: from then on the task tries a whole-cache flush every
    /// [`RECOVERY_INTERVAL`] (and instead of any batch) until one succeeds, so purges resume,
    /// and nothing cached during the outage survives it, as soon as the API is back.
    async fn run_queue(&self, target: usize) {
        let queue = &self.queues[target];
        let api = &self.targets[target];
        // Names that failed, with the number of attempts they had.
        let mut retries: Vec<(String, usize)> = Vec::new();
        // A purge was given up: the next call flushes everything.
        let mut lost = false;
        loop {
            if retries.is_empty() && lost {
                let _ = tokio::time::timeout(RECOVERY_INTERVAL, queue.wake.notified()).await;
            } else if retries.is_empty() {
                queue.wake.notified().await;
            } else {
                let attempts = retries
                    .iter()
                    .map(|(_, attempts)| *attempts)
                    .min()
                    .unwrap_or(1);
                let delay = RETRY_DELAYS[(attempts - 1).min(RETRY_DELAYS.len() - 1)];
                let _ = tokio::time::timeout(delay, queue.wake.notified()).await;
            }
            let taken = std::mem::take(
                &mut *queue
                    .pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            if self.retired.load(std::sync::atomic::Ordering::Acquire) {
                if !retries.is_empty() {
                    tracing::info!(api = %api.api_url, left = retries.len(), "pdns front-ends reconfigured: purges still retried for this API are left");
                }
                for waiter in taken.waiters {
                    let _ = waiter.send(());
                }
                return;
            }
            let mut batch: Vec<(String, usize)> = if taken.everything || lost {
                retries.clear();
                // Given up already: one attempt per interval, no retries of its own.
                let attempts = if lost { RETRY_DELAYS.len() } else { 0 };
                vec![(String::new(), attempts)]
            } else {
                taken.names.into_iter().map(|name| (name, 0)).collect()
            };
            for (name, attempts) in retries.drain(..) {
                if !batch.iter().any(|(queued, _)| *queued == name) {
                    batch.push((name, attempts));
                }
            }
            if let Some(inflight) = &self.inflight {
                let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
                inflight.settle(&names).await;
            }
            let mut failed = None;
            for (name, attempts) in batch {
                if failed.is_none() {
                    match self.flush(api, &name).await {
                        Ok(()) => {
                            if lost && name.is_empty() {
                                lost = false;
                                tracing::info!(api = %api.api_url, "pdns API answers again; its whole cache was flushed for the purges given up meanwhile");
                            }
                            continue;
                        }
                        Err(error) => failed = Some(error),
                    }
                }
                // After a failure, the rest of the batch waits for the retry: a dead API
                // costs one timeout per batch, not one per name.
                let error = failed.as_deref().unwrap_or_default();
                if attempts < RETRY_DELAYS.len() {
                    retries.push((name, attempts + 1));
                } else if !lost {
                    lost = true;
                    tracing::warn!(
                        api = %api.api_url,
                        name = if name.is_empty() { "." } else { name.as_str() },
                        %error,
                        "pdns cache purge failed after retries; old answers may be served until pdns's cache TTL passes or its API answers again (then its whole cache is flushed)"
                    );
                }
            }
            if let Some(error) = &failed {
                tracing::debug!(api = %api.api_url, %error, waiting = retries.len(), "pdns cache purge failed; will retry");
            }
            for waiter in taken.waiters {
                let _ = waiter.send(());
            }
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
        let result = self.flush_once(target, name).await;
        crate::metrics::metrics()
            .purges
            .get_or_create(&crate::metrics::PurgeLabels {
                pdns: target.api_url.clone(),
                outcome: if result.is_ok() { "ok" } else { "failed" },
            })
            .inc();
        result
    }

    /// One purge call for `name` on `target` (see [`Purger::flush`]).
    async fn flush_once(&self, target: &PdnsApi, name: &str) -> Result<(), String> {
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

    /// A pdns API that answers 200 to everything and records each request line.
    async fn recording_api() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.starts_with("PUT ") {
                            record.lock().unwrap().push(line);
                        } else if line.is_empty() {
                            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                            if write.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn names_are_merged_and_too_many_become_one_whole_cache_flush() {
        let (api_url, seen) = recording_api().await;
        let purger = Purger::new(&[PdnsApi {
            api_url,
            api_key: "k".into(),
            server_id: "localhost".into(),
        }])
        .unwrap();
        purger
            .purge(vec!["a.dyn.example".into(), "a.dyn.example".into()])
            .await;
        assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
        let flood: Vec<String> = (0..=MAX_PENDING)
            .map(|n| format!("h{n}.dyn.example"))
            .collect();
        purger.purge(flood).await;
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(requests[1].contains("domain=%2E "), "{requests:?}");
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
