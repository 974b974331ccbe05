//! Numbers to graph, in the Prometheus (OpenMetrics) text format, served with the health checks
//! on `metrics-listen` (off by default) by `http::status`. A leaf: the service records into
//! it, it knows nothing of the service.
//!
//! One process-wide set of metrics ([`metrics()`]), named as pdns names its `pdns_auth_`
//! ones: the `certadns_ddns_` prefix, `_total` for counters, `_seconds` for durations. The
//! hot paths pay a counter increment and, for timed calls, one histogram observation.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an update's answer lines.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpdateLabels {
    /// The dyndns2 code (`good`, `nochg`, `badauth`...).
    pub result: &'static str,
    /// How the client authenticated (`bearer`, `basic`, `query`, `none`, `malformed`).
    pub auth: &'static str,
}

/// Labels of an answer of the RFC 2136 listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    /// The message's opcode (`update`, `query`, `other`).
    pub opcode: &'static str,
    /// The answer's RCODE (`NOERROR`, `REFUSED`, `NOTAUTH`...).
    pub rcode: &'static str,
}

/// Labels of a zone transfer or NOTIFY of the DNS listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    /// `AXFR`, `IXFR`, `IXFR (current)`, `IXFR (whole zone)`; for NOTIFY: `acknowledged`,
    /// `unanswered`.
    pub kind: &'static str,
}

/// Labels of a remote-backend call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// The method (`lookup`, `list`, `getAllDomains`...).
    pub method: &'static str,
    /// The connector (`http`, `unix`, `tcp`).
    pub connector: &'static str,
}

/// Labels of a cache purge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// The pdns API URL.
    pub pdns: String,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// Labels naming a part.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    /// The listener (`updates`, `backend`) or limiter (`abuse`, `auth-failures`).
    pub name: &'static str,
}

/// Labels of an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What came of it (`applied`, `refused`).
    pub outcome: &'static str,
}

/// The labels of `certadns_ddns_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The package version.
    pub version: &'static str,
    /// The git commit built (`unknown` outside a checkout).
    pub commit: &'static str,
}

/// A histogram of durations from 100 µs to about 26 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

/// The metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    /// Update answer lines by result and authentication method.
    pub updates: Family<UpdateLabels, Counter>,
    /// Answers of the RFC 2136 listener, by opcode and RCODE.
    pub dns_messages: Family<DnsLabels, Counter>,
    /// Zone transfers served, by kind.
    pub zone_transfers: Family<TransferLabels, Counter>,
    /// NOTIFY messages to secondaries, by outcome.
    pub notifies: Family<TransferLabels, Counter>,
    /// Time from a parsed update request to its answer.
    pub update_duration: Histogram,
    /// Remote-backend calls by method and connector.
    pub backend_calls: Family<BackendLabels, Counter>,
    /// Their duration.
    pub backend_duration: Family<BackendLabels, Histogram, fn() -> Histogram>,
    /// Full loads of the served index (start-up, and reloads after large outside changes).
    pub index_loads: Counter,
    /// Their duration.
    pub index_load_duration: Histogram,
    /// Writes per group commit.
    pub commit_batch_size: Histogram,
    /// Cache purge calls by pdns and outcome.
    pub purges: Family<PurgeLabels, Counter>,
    /// Episodes of the limiters (a host flagged for abuse, a client or login throttled).
    pub limiter_episodes: Family<NameLabels, Counter>,
    /// Password checks waiting for an argon2 thread.
    pub password_checks_waiting: Gauge,
    /// Open connections by listener.
    pub open_connections: Family<NameLabels, Gauge>,
    /// Configuration reloads (SIGHUP), by outcome (`applied`, `refused`).
    pub config_reloads: Family<OutcomeLabels, Counter>,
    /// 1 when the last configuration reload was applied (or none was asked), 0 when refused.
    pub config_last_reload_successful: Gauge,
    /// Everything above, for encoding.
    registry: Registry,
}

impl Metrics {
    /// The metrics, registered.
    fn new() -> Self {
        // The service's own metrics under its prefix; the process's under their standard
        // names (`process_*`, as every Prometheus client library exports them).
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("certadns_ddns");
        let metrics = Self {
            updates: Family::default(),
            dns_messages: Family::default(),
            zone_transfers: Family::default(),
            notifies: Family::default(),
            update_duration: duration_histogram(),
            backend_calls: Family::default(),
            backend_duration: Family::new_with_constructor(duration_histogram),
            index_loads: Counter::default(),
            index_load_duration: duration_histogram(),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            purges: Family::default(),
            limiter_episodes: Family::default(),
            password_checks_waiting: Gauge::default(),
            open_connections: Family::default(),
            config_reloads: Family::default(),
            config_last_reload_successful: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "updates",
            "Update answer lines, by dyndns2 result and authentication method",
            metrics.updates.clone(),
        );
        registry.register(
            "dns_messages",
            "Answers of the RFC 2136 listener, by opcode and RCODE",
            metrics.dns_messages.clone(),
        );
        registry.register(
            "zone_transfers",
            "Zone transfers served to secondaries, by kind",
            metrics.zone_transfers.clone(),
        );
        registry.register(
            "notifies",
            "NOTIFY messages to secondaries, by outcome",
            metrics.notifies.clone(),
        );
        registry.register(
            "update_duration_seconds",
            "Time from a parsed update request to its answer",
            metrics.update_duration.clone(),
        );
        registry.register(
            "backend_calls",
            "PowerDNS remote-backend calls, by method and connector",
            metrics.backend_calls.clone(),
        );
        registry.register(
            "backend_call_duration_seconds",
            "Time to answer a remote-backend call, by method and connector",
            metrics.backend_duration.clone(),
        );
        registry.register(
            "index_loads",
            "Full loads of the served index",
            metrics.index_loads.clone(),
        );
        registry.register(
            "index_load_duration_seconds",
            "Time of a full load of the served index",
            metrics.index_load_duration.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Writes committed together in one group commit",
            metrics.commit_batch_size.clone(),
        );
        registry.register(
            "cache_purges",
            "Cache purge calls to pdns's API, by pdns and outcome",
            metrics.purges.clone(),
        );
        registry.register(
            "limiter_episodes",
            "Episodes of the limiters: hosts flagged for abuse, clients or logins throttled",
            metrics.limiter_episodes.clone(),
        );
        registry.register(
            "password_checks_waiting",
            "Password checks waiting for an argon2 thread",
            metrics.password_checks_waiting.clone(),
        );
        registry.register(
            "open_connections",
            "Open connections, by listener",
            metrics.open_connections.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads asked with SIGHUP, by outcome (applied, refused)",
            metrics.config_reloads.clone(),
        );
        // As Prometheus's own prometheus_config_last_reload_successful: alert on 0.
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration reload was applied (1) or refused (0)",
            metrics.config_last_reload_successful.clone(),
        );
        metrics.config_last_reload_successful.set(1);
        // As Prometheus's own *_build_info: 1, with the version and commit as labels.
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("CERTADNS_COMMIT"),
            })
            .set(1);
        registry.register(
            "build_info",
            "The version and git commit of the running binary (always 1)",
            build_info,
        );
        root.register_collector(Box::new(ProcessCollector));
        Self {
            registry: root,
            ..metrics
        }
    }

    /// The text format of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Counts an open connection of `listener` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl OpenConnection {
    /// A connection of `listener` opened.
    pub fn new(listener: &'static str) -> Self {
        let gauge = metrics()
            .open_connections
            .get_or_create(&NameLabels { name: listener })
            .clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Observes `elapsed` into `histogram`, in seconds.
pub fn observe(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let metrics = metrics();
        metrics
            .updates
            .get_or_create(&UpdateLabels {
                result: "good",
                auth: "bearer",
            })
            .inc();
        observe(&metrics.update_duration, Duration::from_millis(3));
        let _open = OpenConnection::new("updates");
        let text = metrics.encode();
        assert!(
            text.contains("certadns_ddns_updates_total{result=\"good\",auth=\"bearer\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE certadns_ddns_update_duration_seconds histogram"));
        assert!(text.contains("certadns_ddns_open_connections{name=\"updates\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at each scrape: CPU time, memory,
/// open and allowed file descriptors, start time. (`/proc` counts CPU time in USER_HZ, 100 a
/// second on every Linux architecture.)
#[derive(Debug)]
struct ProcessCollector;

impl ProcessCollector {
    /// `/proc/self/status`'s `key:` value in kB, as bytes.
    fn status_bytes(status: &str, key: &str) -> Option<f64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024.0)
    }
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        const USER_HZ: f64 = 100.0;
        // After the command name (in parentheses, which may hold spaces): field 3 onwards.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let mut gauges: Vec<(&str, &str, f64)> = Vec::new();
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            let counter = ConstCounter::new((user + system) / USER_HZ);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let boot: Option<f64> = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|value| value.trim().parse().ok())
        });
        if let (Some(boot), Some(start)) = (boot, field(22)) {
            gauges.push((
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                boot + start / USER_HZ,
            ));
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(rss) = Self::status_bytes(&status, "VmRSS:") {
            gauges.push((
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss,
            ));
        }
        if let Some(size) = Self::status_bytes(&status, "VmSize:") {
            gauges.push((
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                size,
            ));
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            #[allow(clippy::cast_precision_loss, reason = "a count of file descriptors")]
            let open = entries.count() as f64;
            gauges.push(("process_open_fds", "Number of open file descriptors", open));
        }
        let limit: Option<f64> =
            std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find(|line| line.starts_with("Max open files"))
                        .and_then(|line| line.split_whitespace().nth(3))
                        .and_then(|soft| soft.parse().ok())
                });
        if let Some(limit) = limit {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors",
                limit,
            ));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
