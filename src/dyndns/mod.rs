//! The DynDNS update endpoints over HTTP: routing, body handling and answers.
//!
//! [`UpdateService::handle`] is the one router: a `match` on the path. The protocol work is in
//! [`request`] (parsing), [`update`] (authentication and the write) and [`response`] (codes);
//! this file only adapts hyper requests to them and their results to hyper responses.

mod acme;
pub mod address;
pub mod client;
pub mod request;
pub mod response;
pub mod update;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ipnet::IpNet;

use self::client::{ClientAddress, detect_client};
use self::request::{Endpoint, parse_update_request};
use self::response::{Answer, ReturnCode};
use self::update::Updater;
use crate::log::Untrusted;

/// Limits and trust settings of the update endpoints.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed to receive the body.
    pub body_read_timeout: Duration,
    /// Answer every dyndns2 code with status 200 (for ddclient, which ignores the body of any
    /// non-2xx answer but 401).
    pub always_200: bool,
    /// How long an ACME challenge value is served; None: the ACME endpoints are off.
    pub acme_lifetime: Option<Duration>,
}

impl ServiceOptions {
    /// The options `config` gives (`[updates]` and `[acme]`).
    pub fn new(config: &crate::config::Config) -> Self {
        let updates = &config.updates;
        Self {
            trusted_proxies: updates.trusted_proxies.clone(),
            max_body_bytes: updates.max_body_bytes,
            body_read_timeout: updates.body_read_timeout,
            always_200: updates.always_200,
            acme_lifetime: config.acme.enabled.then_some(config.acme.value_lifetime),
        }
    }
}

/// The HTTP face of the update endpoints.
#[derive(Debug, Clone)]
pub struct UpdateService {
    /// Applies updates.
    updater: Updater,
    /// Limits and trust settings; replaced by a reload (SIGHUP).
    options: Arc<arc_swap::ArcSwap<ServiceOptions>>,
    /// The account holder's pages under `/dashboard`, when enabled.
    dashboard: Option<crate::dashboard::Dashboard>,
}

impl UpdateService {
    /// A service applying updates with `updater`.
    pub fn new(updater: Updater, options: ServiceOptions) -> Self {
        Self {
            updater,
            options: Arc::new(arc_swap::ArcSwap::from_pointee(options)),
            dashboard: None,
        }
    }

    /// Applies `options` (and `dashboard` to the pages) from the next request on.
    pub fn reconfigure(
        &self,
        options: ServiceOptions,
        dashboard: crate::dashboard::DashboardOptions,
    ) {
        self.options.store(Arc::new(options));
        if let Some(pages) = &self.dashboard {
            pages.reconfigure(dashboard);
        }
    }

    /// Serves the account holder's pages under `/dashboard` too.
    pub fn with_dashboard(mut self, dashboard: crate::dashboard::Dashboard) -> Self {
        self.dashboard = Some(dashboard);
        self
    }

    /// Answers one request from `peer`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let client = detect_client(
            peer,
            request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(HeaderValue::as_bytes),
            &self.options.load().trusted_proxies,
        );
        let path = request.uri().path();
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let endpoint = match path {
            "/nic/update"
            | "/domains/nic/update"
            | "/domains/v2/update"
            | "/domains/dyndns/update" => Endpoint::Nic,
            "/domains/update" => Endpoint::Basic,
            "/domains/my-ip" => return my_ip(request.method(), client),
            "/acme/present" => return self.httpreq(request, client, true).await,
            "/acme/cleanup" => return self.httpreq(request, client, false).await,
            "/update" => return self.acme_dns_update(request, client).await,
            dashboard if dashboard == "/dashboard" || dashboard.starts_with("/dashboard/") => {
                return match &self.dashboard {
                    Some(pages) => pages.handle(request, client).await,
                    None => text(StatusCode::NOT_FOUND, "not found"),
                };
            }
            _ => return text(StatusCode::NOT_FOUND, "not found"),
        };
        if request.method() != Method::GET && request.method() != Method::POST {
            return method_not_allowed("GET, POST");
        }
        self.update(endpoint, request, client).await
    }

    /// Handles an update endpoint.
    async fn update(
        &self,
        endpoint: Endpoint,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let (parts, body) = request.into_parts();
        let body = match self.read_form_body(&parts, body).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let header_text = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let update = parse_update_request(
            endpoint,
            parts
                .headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            parts.uri.query(),
            body.as_deref(),
            header_text(header::USER_AGENT),
        );
        let hostname = update.hostnames.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "update",
            path = %Untrusted::new(&path),
            hostname = %Untrusted::new(&hostname),
            client = %client.source
        );
        let parsed = update.parse();
        let auth = match &parsed.credentials {
            None => "none",
            Some(crate::auth::Credentials::Bearer(_)) => "bearer",
            Some(crate::auth::Credentials::Password { method, .. }) => method.as_str(),
            Some(crate::auth::Credentials::Malformed) => "malformed",
        };
        let started = std::time::Instant::now();
        let answer = match (parsed.ambiguity, parsed.txt.clone()) {
            // Two things that cannot both be done as asked: refused whole, before anything is
            // checked (it says nothing of the account).
            (Some(why), _) => Answer::once(ReturnCode::Ambiguous(why)),
            // `txt=` (or `clear=true`): the hosts' ACME challenge values, not their addresses.
            (None, Some(change)) => match parsed.hosts {
                Ok(hosts) => {
                    tracing::Instrument::instrument(
                        self.txt_update(parsed.credentials, hosts, change, client),
                        span.clone(),
                    )
                    .await
                }
                Err(request::HostListError::Missing) => Answer::once(ReturnCode::Notfqdn),
                Err(request::HostListError::TooMany) => Answer::once(ReturnCode::Numhost),
            },
            (None, None) => {
                tracing::Instrument::instrument(self.updater.apply(parsed, client), span.clone())
                    .await
            }
        };
        let metrics = crate::metrics::metrics();
        crate::metrics::observe(&metrics.update_duration, started.elapsed());
        for code in answer.codes() {
            metrics
                .updates
                .get_or_create(&crate::metrics::UpdateLabels {
                    result: code.label(),
                    auth,
                })
                .inc();
        }
        span.in_scope(|| {
            // A router repeating its address is most of the traffic and changes nothing:
            // debug. Changes and refusals: info.
            if answer.changes_nothing() {
                tracing::debug!(outcome = %answer.labels(), "update answered");
            } else {
                tracing::info!(outcome = %answer.labels(), "update answered");
            }
        });
        respond(&answer, self.options.load().always_200)
    }

    /// Reads a form body, if the request has one. Bodies of other content types are ignored
    /// (some routers send a `Content-Type` with an empty body); a body that is too large or too
    /// slow is refused.
    async fn read_form_body(
        &self,
        parts: &hyper::http::request::Parts,
        body: Incoming,
    ) -> Result<Option<Vec<u8>>, Response<Full<Bytes>>> {
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_none_or(|value| {
                value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let (max_bytes, timeout) = {
            let options = self.options.load();
            (options.max_body_bytes, options.body_read_timeout)
        };
        let bytes = collect_body(parts, body, max_bytes, timeout).await?;
        Ok((is_form && !bytes.is_empty()).then(|| bytes.to_vec()))
    }
}

/// Reads a request body of at most `max_bytes` within `timeout`; `Err` holds the answer to a
/// body too large (413, also when its declared length is), too slow (408) or malformed (400).
pub(crate) async fn collect_body(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Full<Bytes>>> {
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > max_bytes as u64) {
        return Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    let limited = Limited::new(body, max_bytes);
    match tokio::time::timeout(timeout, limited.collect()).await {
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

/// `/domains/my-ip`: the caller's address as JSON, no authentication.
fn my_ip(method: &Method, client: ClientAddress) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let body = serde_json::json!({ "ip": client.source.to_string() }).to_string();
    let mut response = text(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The HTTP answer of dyndns2 codes: their status (or 200 with `always_200`), one line per
/// code and, for `badauth`, a Basic challenge (clients that wait for a challenge before
/// sending credentials need it).
fn respond(answer: &Answer, always_200: bool) -> Response<Full<Bytes>> {
    let status = if always_200 {
        StatusCode::OK
    } else {
        StatusCode::from_u16(answer.status()).expect("dyndns2 statuses are valid")
    };
    let mut response = text(status, &answer.body());
    if answer.is_badauth() {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"certadns-ddns\", charset=\"UTF-8\""),
        );
    }
    response
}

/// A 405 naming the allowed methods.
fn method_not_allowed(allowed: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// A plain-text response. `Full` bodies have a known length, so hyper frames them with
/// `Content-Length`, never chunked.
pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
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
