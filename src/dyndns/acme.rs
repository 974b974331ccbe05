//! ACME DNS-01 for the DDNS hosts: the owner of a host sets TXT values at
//! `_acme-challenge.<host>` so that a home server behind a dynamic address gets a certificate,
//! wildcards included. Three ways in, for the clients that exist:
//!
//! - lego's `httpreq` provider (and anything speaking it): `POST /acme/present` and
//!   `/acme/cleanup` with `{"fqdn": "_acme-challenge.<host>.", "value": "..."}`, Basic
//!   authentication with the username and an API key or the password.
//! - acme-dns clients: `POST /update` with `X-Api-User`/`X-Api-Key` and
//!   `{"subdomain": "<host>", "txt": "..."}` (the subdomain is the host's name here, not an
//!   acme-dns account's random one); answered `{"txt": "..."}` as acme-dns does.
//! - scripts, Duck DNS style: `txt=VALUE` (or `clear=true`) on the update endpoints, with the
//!   usual credentials and hostnames; answered `good`/`nochg` per host.
//!
//! API keys need `acme:update` (a key on a web server that cannot move the host) or
//! `domains:update`. Values are base64url (what RFC 8555 §8.4 makes them), at most a few per
//! name, served at once with a short TTL, purged from pdns's caches, and removed on cleanup or
//! after `[acme] value-lifetime-secs`. No other name can get a TXT this way: only
//! `_acme-challenge.` directly under a domain the user owns.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::UpdateService;
use super::client::ClientAddress;
use super::request::TxtChange;
use super::response::{AddressList, Answer, ReturnCode};
use crate::auth::{Credentials, Purpose, header_credentials};
use crate::model::{AuthMethod, DomainName};
use crate::store::challenges::{CHALLENGE_LABEL, ChallengeOutcome};

/// The longest value taken: one TXT string (an ACME value has 43 characters).
const MAX_VALUE_LENGTH: usize = 255;

/// Whether `value` can be a DNS-01 value: base64url characters, 1 to 255 of them. Nothing
/// else is served, so no value needs escaping in a TXT record.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LENGTH
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The host of a challenge name as lego sends it (`_acme-challenge.home.dyn.example.`, the
/// final dot optional, any case); None for any other name.
fn host_of(fqdn: &str) -> Option<DomainName> {
    let fqdn = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let (label, host) = fqdn.split_once('.')?;
    if !label.eq_ignore_ascii_case(CHALLENGE_LABEL) {
        return None;
    }
    host.parse().ok()
}

/// What a challenge request asks.
#[derive(Debug)]
enum Operation {
    /// Add the value.
    Present(String),
    /// Remove the value, or every value (None).
    CleanUp(Option<String>),
}

/// Why a challenge request is refused, with its HTTP answer.
#[derive(Debug)]
enum Refusal {
    /// The request is malformed: 400 with the reason.
    BadRequest(&'static str),
    /// A dyndns2 code (`badauth`, `911`, `dnserr`, `nohost`) with its status.
    Code(ReturnCode),
}

/// lego's `httpreq` body.
#[derive(Debug, Deserialize)]
struct HttpReqBody {
    /// `_acme-challenge.<host>.`
    fqdn: String,
    /// The value.
    value: String,
}

/// acme-dns's `/update` body.
#[derive(Debug, Deserialize)]
struct AcmeDnsBody {
    /// The host's name.
    subdomain: String,
    /// The value.
    txt: String,
}

impl UpdateService {
    /// `POST /acme/present` and `/acme/cleanup` (lego's `httpreq`): 200 `ok` when done.
    pub(super) async fn httpreq(
        &self,
        request: Request<Incoming>,
        client: ClientAddress,
        present: bool,
    ) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            return super::method_not_allowed("POST");
        }
        let Some(lifetime) = self.options.load().acme_lifetime else {
            return super::text(StatusCode::NOT_FOUND, "not found");
        };
        let credentials = header_credentials(header_bytes(&request, header::AUTHORIZATION), true);
        let body = match self.read_json::<HttpReqBody>(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let Some(host) = host_of(&body.fqdn) else {
            return super::text(
                StatusCode::BAD_REQUEST,
                "fqdn must be _acme-challenge. and the name of one of your hosts",
            );
        };
        let operation = if present {
            Operation::Present(body.value)
        } else {
            Operation::CleanUp(Some(body.value))
        };
        match self
            .challenge(credentials, client, host, operation, lifetime)
            .await
        {
            Ok(_) => super::text(StatusCode::OK, "ok"),
            Err(Refusal::BadRequest(reason)) => super::text(StatusCode::BAD_REQUEST, reason),
            Err(Refusal::Code(code)) => super::respond(&Answer::once(code), false),
        }
    }

    /// `POST /update` (acme-dns): 200 `{"txt": VALUE}` when set; acme-dns's error bodies
    /// (`forbidden`, `bad_subdomain`, `bad_txt`) otherwise.
    pub(super) async fn acme_dns_update(
        &self,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            return super::method_not_allowed("POST");
        }
        let Some(lifetime) = self.options.load().acme_lifetime else {
            return super::text(StatusCode::NOT_FOUND, "not found");
        };
        let header_text = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let credentials = match (header_text("x-api-user"), header_text("x-api-key")) {
            (Some(login), Some(password)) => Some(Credentials::Password {
                method: AuthMethod::Basic,
                login,
                password,
            }),
            (None, None) => None,
            _ => Some(Credentials::Malformed),
        };
        let body = match self.read_json::<AcmeDnsBody>(request).await {
            Ok(body) => body,
            Err(response) if response.status() == StatusCode::BAD_REQUEST => {
                return acme_dns_error(StatusCode::BAD_REQUEST, "malformed_json");
            }
            // Too large or too slow: 413 or 408 as everywhere.
            Err(response) => return response,
        };
        let Ok(host) = body.subdomain.trim_end_matches('.').parse::<DomainName>() else {
            return acme_dns_error(StatusCode::BAD_REQUEST, "bad_subdomain");
        };
        let value = body.txt.clone();
        match self
            .challenge(
                credentials,
                client,
                host,
                Operation::Present(body.txt),
                lifetime,
            )
            .await
        {
            Ok(_) => {
                let body = serde_json::json!({ "txt": value }).to_string();
                json(StatusCode::OK, body)
            }
            Err(Refusal::BadRequest(_)) => acme_dns_error(StatusCode::BAD_REQUEST, "bad_txt"),
            Err(Refusal::Code(
                ReturnCode::Badauth | ReturnCode::Throttled(_) | ReturnCode::Nohost,
            )) => acme_dns_error(StatusCode::UNAUTHORIZED, "forbidden"),
            Err(Refusal::Code(code)) => super::respond(&Answer::once(code), false),
        }
    }

    /// `txt=` (or `clear=true`) on the update endpoints: the hosts' challenge values instead
    /// of their addresses, one `good`/`nochg`/`nohost` line per host.
    pub(super) async fn txt_update(
        &self,
        credentials: Option<Credentials>,
        hosts: Vec<Option<DomainName>>,
        change: TxtChange,
        client: ClientAddress,
    ) -> Answer {
        let Some(lifetime) = self.options.load().acme_lifetime else {
            return Answer::once(ReturnCode::BadTxt);
        };
        if let TxtChange::Present(value) = &change {
            if !valid_value(value) {
                return Answer::once(ReturnCode::BadTxt);
            }
        }
        let user_id = match self
            .updater
            .authenticate_for(credentials, client, Purpose::Acme)
            .await
        {
            Ok(user_id) => user_id,
            Err(code) => return Answer::once(code),
        };
        let mut codes = Vec::with_capacity(hosts.len());
        for host in hosts {
            let Some(host) = host else {
                codes.push(ReturnCode::Notfqdn);
                continue;
            };
            let operation = match &change {
                TxtChange::Present(value) => Operation::Present(value.clone()),
                TxtChange::Clear => Operation::CleanUp(None),
            };
            codes.push(
                match self
                    .apply_challenge(user_id, host, operation, lifetime)
                    .await
                {
                    Ok(ChallengeOutcome::Changed { .. }) => {
                        ReturnCode::Good(AddressList::default())
                    }
                    Ok(ChallengeOutcome::Unchanged) => ReturnCode::Nochg(AddressList::default()),
                    Ok(ChallengeOutcome::NoHost) => ReturnCode::Nohost,
                    Ok(ChallengeOutcome::Disputed(_)) => ReturnCode::Disputed,
                    // Per host, as for address updates: the other hosts' lines stand.
                    Err(ReturnCode::Abuse) => ReturnCode::Abuse,
                    Err(code) => return Answer::once(code),
                },
            );
        }
        Answer::per_host(codes)
    }

    /// Authenticates for ACME and applies `operation` to `host`'s challenge values.
    async fn challenge(
        &self,
        credentials: Option<Credentials>,
        client: ClientAddress,
        host: DomainName,
        operation: Operation,
        lifetime: std::time::Duration,
    ) -> Result<ChallengeOutcome, Refusal> {
        if let Operation::Present(value) | Operation::CleanUp(Some(value)) = &operation {
            if !valid_value(value) {
                return Err(Refusal::BadRequest(
                    "value must be 1 to 255 base64url characters (A-Z, a-z, 0-9, - and _)",
                ));
            }
        }
        let user_id = self
            .updater
            .authenticate_for(credentials, client, Purpose::Acme)
            .await
            .map_err(Refusal::Code)?;
        match self
            .apply_challenge(user_id, host, operation, lifetime)
            .await
            .map_err(Refusal::Code)?
        {
            ChallengeOutcome::NoHost => Err(Refusal::Code(ReturnCode::Nohost)),
            ChallengeOutcome::Disputed(_) => Err(Refusal::Code(ReturnCode::Disputed)),
            outcome => Ok(outcome),
        }
    }

    /// Applies `operation` for `user_id`, then purges the name from pdns's caches.
    async fn apply_challenge(
        &self,
        user_id: i64,
        host: DomainName,
        operation: Operation,
        lifetime: std::time::Duration,
    ) -> Result<ChallengeOutcome, ReturnCode> {
        let served = self.updater.served();
        let shown = host.to_string();
        if !self
            .updater
            .admit(user_id, &crate::store::challenges::challenge_name(&host))
        {
            return Err(ReturnCode::Abuse);
        }
        let (present, result) = match operation {
            Operation::Present(value) => (
                true,
                served
                    .present_challenge(user_id, host, value, lifetime)
                    .await,
            ),
            Operation::CleanUp(value) => {
                (false, served.clean_up_challenge(user_id, host, value).await)
            }
        };
        let outcome = result.map_err(|error| {
            tracing::error!(%error, "ACME challenge not changed: store failure");
            ReturnCode::Dnserr
        })?;
        if let ChallengeOutcome::Disputed(conflict) = &outcome {
            tracing::warn!(host = %shown, user_id, %conflict, "ACME value refused");
        }
        if let ChallengeOutcome::Changed { name } = &outcome {
            tracing::info!(
                host = %shown,
                user_id,
                "ACME challenge value {}",
                if present { "set" } else { "removed" }
            );
            self.updater.purge(vec![name.clone()]).await;
        }
        Ok(outcome)
    }

    /// Reads a JSON body (any content type: clients differ), within the body limits.
    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, Response<Full<Bytes>>> {
        let (parts, body) = request.into_parts();
        let (max_bytes, timeout) = {
            let options = self.options.load();
            (options.max_body_bytes, options.body_read_timeout)
        };
        let bytes = super::collect_body(&parts, body, max_bytes, timeout).await?;
        serde_json::from_slice(&bytes).map_err(|_| {
            super::text(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object with the expected fields",
            )
        })
    }
}

/// The bytes of header `name`, if present.
fn header_bytes(request: &Request<Incoming>, name: header::HeaderName) -> Option<&[u8]> {
    request.headers().get(name).map(HeaderValue::as_bytes)
}

/// A JSON answer.
fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = super::text(status, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error as acme-dns words it: `{"error": "..."}`.
fn acme_dns_error(status: StatusCode, error: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": error }).to_string())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_challenge_names_and_base64url_values_are_taken() {
        assert_eq!(
            host_of("_acme-challenge.home.dyn.example.").map(|h| h.to_string()),
            Some("home.dyn.example".into())
        );
        assert_eq!(
            host_of("_ACME-Challenge.Home.Dyn.Example").map(|h| h.to_string()),
            Some("home.dyn.example".into())
        );
        for other in [
            "home.dyn.example.",
            "_acme-challenge.",
            "_acme-challengex.home.dyn.example.",
            "x._acme-challenge.home.dyn.example",
            "_acme-challenge.bad..name",
        ] {
            assert!(host_of(other).is_none(), "{other}");
        }
        assert!(valid_value("LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM"));
        for bad in ["", "a b", "x\"y", "a;b", "é", &"a".repeat(256)] {
            assert!(!valid_value(bad), "{bad:?}");
        }
    }
}
