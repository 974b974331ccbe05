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
//! This module is the HTTP face of the first two; the values themselves (what one may be, the
//! pace, the write, the purge) are `challenges.rs`'s, shared with `txt=`.
//!
//! API keys need `acme:update` (a key on a web server that cannot move the host) or
//! `domains:update`. Values are base64url (what RFC 8555 §8.4 makes them), at most a few per
//! name, served at once with a short TTL, purged from pdns's caches, and removed on cleanup or
//! after `[acme] value-lifetime-secs`. No other name can get a TXT this way: only
//! `_acme-challenge.` directly under a domain the user owns.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use serde::Deserialize;

use crate::auth::{AuthError, Authenticator, Credentials, Purpose, header_credentials};
use crate::challenges::{ChallengeError, Challenges, Operation, host_of, valid_value};
use crate::config::{self, Live, LiveSections};
use crate::http::body::{self, BodyLimits};
use crate::http::client::ClientAddress;
use crate::http::response::{self, Answer, json, text};
use crate::model::challenge::ChallengeOutcome;
use crate::model::{AuthMethod, DomainName};

/// Why a challenge request is refused.
#[derive(Debug)]
enum Refusal {
    /// The request is malformed: 400 with the reason.
    BadRequest(&'static str),
    /// The credentials.
    Auth(AuthError),
    /// The pace, or the store.
    Challenge(ChallengeError),
    /// The user has no such host.
    NoHost,
    /// The name breaks one-name-one-owner.
    Disputed,
}

impl Refusal {
    /// The answer of lego's `httpreq` (and of acme-dns for what it has no word for): the
    /// update endpoints' codes and statuses (`badauth` with a Basic challenge, `911`,
    /// `dnserr`, `abuse`, `nohost`, `disputed`), which clients already know.
    fn answer(self) -> Answer {
        match self {
            Self::BadRequest(reason) => text(StatusCode::BAD_REQUEST, reason),
            Self::Auth(AuthError::Refused | AuthError::Throttled(_)) => {
                response::unauthorized("badauth")
            }
            Self::Auth(AuthError::Busy) => text(StatusCode::SERVICE_UNAVAILABLE, "911"),
            Self::Auth(AuthError::Store(error)) => {
                tracing::error!(%error, "authentication not possible: store failure");
                text(StatusCode::INTERNAL_SERVER_ERROR, "dnserr")
            }
            Self::Auth(AuthError::Broken) | Self::Challenge(ChallengeError::Store(_)) => {
                text(StatusCode::INTERNAL_SERVER_ERROR, "dnserr")
            }
            Self::Challenge(ChallengeError::Abuse) => text(StatusCode::TOO_MANY_REQUESTS, "abuse"),
            Self::NoHost => text(StatusCode::NOT_FOUND, "nohost"),
            Self::Disputed => text(StatusCode::FORBIDDEN, crate::challenges::DISPUTED),
        }
    }
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

/// The ACME endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Acme {
    /// Checks credentials (keys with `acme:update` or `domains:update`).
    authenticator: Authenticator,
    /// Sets the values.
    challenges: Challenges,
    /// `[acme]` as in effect: off (404), or how long a value is served.
    acme: Live<config::Acme>,
    /// `[updates]` as in effect: the body limits.
    updates: Live<config::Updates>,
}

impl Acme {
    /// The endpoints, authenticating with `authenticator`, writing through `challenges`.
    pub fn new(authenticator: Authenticator, challenges: Challenges, live: &LiveSections) -> Self {
        Self {
            authenticator,
            challenges,
            acme: Arc::clone(&live.acme),
            updates: Arc::clone(&live.updates),
        }
    }

    /// How long a value is served and the body limits, as in effect; None when off.
    fn in_effect(&self) -> Option<(Duration, BodyLimits)> {
        let lifetime = self.acme.load().lifetime()?;
        Some((lifetime, BodyLimits::from(&**self.updates.load())))
    }

    /// `POST /acme/present` and `/acme/cleanup` (lego's `httpreq`): 200 `ok` when done.
    pub async fn httpreq(
        &self,
        request: Request<Incoming>,
        client: ClientAddress,
        present: bool,
    ) -> Answer {
        let Some((lifetime, limits)) = self.in_effect() else {
            return response::not_found();
        };
        let credentials = header_credentials(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            true,
        );
        let body = match read_json::<HttpReqBody>(request, limits).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let Some(host) = host_of(&body.fqdn) else {
            return text(
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
            Ok(_) => text(StatusCode::OK, "ok"),
            Err(refusal) => refusal.answer(),
        }
    }

    /// `POST /update` (acme-dns): 200 `{"txt": VALUE}` when set; acme-dns's error bodies
    /// (`forbidden`, `bad_subdomain`, `bad_txt`) otherwise.
    pub async fn acme_dns_update(
        &self,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> Answer {
        let Some((lifetime, limits)) = self.in_effect() else {
            return response::not_found();
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
        let body = match read_json::<AcmeDnsBody>(request, limits).await {
            Ok(body) => body,
            Err(answer) if answer.status() == StatusCode::BAD_REQUEST => {
                return acme_dns_error(StatusCode::BAD_REQUEST, "malformed_json");
            }
            // Too large or too slow: 413 or 408 as everywhere.
            Err(answer) => return answer,
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
            Ok(_) => json(
                StatusCode::OK,
                &serde_json::json!({ "txt": value }).to_string(),
            ),
            Err(Refusal::BadRequest(_)) => acme_dns_error(StatusCode::BAD_REQUEST, "bad_txt"),
            Err(Refusal::Auth(AuthError::Refused | AuthError::Throttled(_)) | Refusal::NoHost) => {
                acme_dns_error(StatusCode::UNAUTHORIZED, "forbidden")
            }
            Err(refusal) => refusal.answer(),
        }
    }

    /// Authenticates for ACME and applies `operation` to `host`'s challenge values.
    async fn challenge(
        &self,
        credentials: Option<Credentials>,
        client: ClientAddress,
        host: DomainName,
        operation: Operation,
        lifetime: Duration,
    ) -> Result<ChallengeOutcome, Refusal> {
        if let Operation::Present(value) | Operation::CleanUp(Some(value)) = &operation {
            if !valid_value(value) {
                return Err(Refusal::BadRequest(
                    "value must be 1 to 255 base64url characters (A-Z, a-z, 0-9, - and _)",
                ));
            }
        }
        let user_id = self
            .authenticator
            .authenticate_user(credentials, client.source, Purpose::Acme)
            .await
            .map_err(Refusal::Auth)?;
        match self
            .challenges
            .apply(user_id, host, operation, lifetime)
            .await
            .map_err(Refusal::Challenge)?
        {
            ChallengeOutcome::NoHost => Err(Refusal::NoHost),
            ChallengeOutcome::Disputed(_) => Err(Refusal::Disputed),
            outcome => Ok(outcome),
        }
    }
}

/// Reads a JSON body (any content type: clients differ), within `limits`.
async fn read_json<T: for<'de> Deserialize<'de>>(
    request: Request<Incoming>,
    limits: BodyLimits,
) -> Result<T, Answer> {
    let (parts, body) = request.into_parts();
    let bytes = body::collect(&parts, body, limits).await?;
    serde_json::from_slice(&bytes).map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object with the expected fields",
        )
    })
}

/// An error as acme-dns words it: `{"error": "..."}`.
fn acme_dns_error(status: StatusCode, error: &str) -> Answer {
    json(status, &serde_json::json!({ "error": error }).to_string())
}
