//! `[listeners]`: the sockets, and what each connection may take. Restart-only, but for
//! `backend-allow-from`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Section, changed};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `[listeners]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Listeners {
    /// Address of the DynDNS update endpoints.
    pub listen: SocketAddr,
    /// Address of the PowerDNS remote backend's HTTP connector (base path `/dns`).
    pub backend_listen: SocketAddr,
    /// Path of the PowerDNS remote backend's unix socket; none by default.
    pub backend_socket: Option<PathBuf>,
    /// Address of the backend's line-JSON TCP listener, which `certadns-ddns relay` (pdns's
    /// `pipe` connector on another host) connects to; none by default.
    pub backend_tcp_listen: Option<SocketAddr>,
    /// Networks allowed to connect to the backend's network listeners (HTTP and TCP); unset
    /// means loopback only, and then both listeners must be on loopback.
    pub backend_allow_from: Option<Vec<IpNet>>,
    /// Address of the metrics and health listener (`/metrics`, `/health/live`,
    /// `/health/ready`); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the RFC 2136 update listener (UDP and TCP: `nsupdate`, lego, certbot, Kea,
    /// external-dns), which takes updates signed with the keys of `certadns-ddns tsig`; none by
    /// default.
    pub update_dns_listen: Option<SocketAddr>,
    /// Messages a second one client (an IPv4 address or an IPv6 /64) may send to the RFC 2136
    /// listener, twice that in a burst; 0: no pace.
    pub update_dns_pace: u32,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address or an IPv6 /64) may hold open on the update
    /// listener; `trusted-proxies` of `[updates]` are exempt. 0: no cap.
    pub max_connections_per_client: usize,
    /// Time allowed from a connection's opening to its first byte.
    #[serde(rename = "first-byte-timeout-secs", with = "super::units::secs")]
    pub first_byte_timeout: Duration,
    /// Time allowed for a client to send the request headers.
    #[serde(rename = "header-read-timeout-secs", with = "super::units::secs")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes (at least 8192).
    pub max_header_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(rename = "shutdown-grace-secs", with = "super::units::secs")]
    pub shutdown_grace: Duration,
}

impl Listeners {
    /// Who may connect to the backend's network listeners: `backend-allow-from`, or loopback.
    pub fn backend_allowed(&self) -> Vec<IpNet> {
        self.backend_allow_from.clone().unwrap_or_else(|| {
            ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|net| net.parse().expect("valid loopback CIDR"))
                .collect()
        })
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            backend_socket: None,
            backend_tcp_listen: None,
            metrics_listen: None,
            update_dns_listen: None,
            update_dns_pace: 20,
            backend_allow_from: None,
            max_connections: 1024,
            max_connections_per_client: 64,
            first_byte_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Section for Listeners {
    fn restart_needed(&self, next: &Self) -> Vec<&'static str> {
        let Self {
            listen,
            backend_listen,
            backend_socket,
            backend_tcp_listen,
            backend_allow_from: _,
            metrics_listen,
            update_dns_listen,
            update_dns_pace,
            max_connections,
            max_connections_per_client,
            first_byte_timeout,
            header_read_timeout,
            max_header_bytes,
            shutdown_grace,
        } = self;
        changed(&[
            ("listeners.listen", *listen != next.listen),
            (
                "listeners.backend-listen",
                *backend_listen != next.backend_listen,
            ),
            (
                "listeners.backend-socket",
                *backend_socket != next.backend_socket,
            ),
            (
                "listeners.backend-tcp-listen",
                *backend_tcp_listen != next.backend_tcp_listen,
            ),
            (
                "listeners.metrics-listen",
                *metrics_listen != next.metrics_listen,
            ),
            (
                "listeners.update-dns-listen",
                *update_dns_listen != next.update_dns_listen,
            ),
            (
                "listeners.update-dns-pace",
                *update_dns_pace != next.update_dns_pace,
            ),
            (
                "listeners.max-connections",
                *max_connections != next.max_connections,
            ),
            (
                "listeners.max-connections-per-client",
                *max_connections_per_client != next.max_connections_per_client,
            ),
            (
                "listeners.first-byte-timeout-secs",
                *first_byte_timeout != next.first_byte_timeout,
            ),
            (
                "listeners.header-read-timeout-secs",
                *header_read_timeout != next.header_read_timeout,
            ),
            (
                "listeners.max-header-bytes",
                *max_header_bytes != next.max_header_bytes,
            ),
            (
                "listeners.shutdown-grace-secs",
                *shutdown_grace != next.shutdown_grace,
            ),
        ])
    }

    fn reloaded(&self, next: &Self) -> Self {
        Self {
            backend_allow_from: next.backend_allow_from.clone(),
            ..self.clone()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "max-header-bytes must be at least 8192".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max-connections must be at least 1".into(),
            ));
        }
        if self.header_read_timeout.is_zero() || self.first_byte_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "read timeouts must be at least 1 second".into(),
            ));
        }
        if self.backend_allow_from.is_none() {
            let exposed = std::iter::once(self.backend_listen)
                .chain(self.backend_tcp_listen)
                .find(|address| !address.ip().is_loopback());
            if let Some(address) = exposed {
                return Err(ConfigError::Invalid(format!(
                    "the backend listens on {address}, beyond loopback, but backend-allow-from \
                     is not set: list the networks of your pdns servers (the backend serves \
                     every zone in full to whoever connects)"
                )));
            }
        }
        Ok(())
    }
}
