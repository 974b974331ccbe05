//! The dyndns2 update endpoints (`/nic/update` and its aliases, `/domains/update`): body
//! handling and answers.
//!
//! The route table (`routes.rs`) finds the endpoint; [`DynDns::update`] reads the body and
//! hands the request to [`request`] (parsing), [`update`] (the write) and [`response`]
//! (codes). `txt=` sets the hosts' ACME challenge values through `challenges.rs` instead.

pub mod address;
pub mod request;
pub mod response;
pub mod update;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};

use self::request::{Endpoint, TxtChange, parse_update_request};
use self::response::{AddressList, Answer, ReturnCode};
use self::update::Updater;
use crate::auth::{Credentials, Purpose};
use crate::challenges::{ChallengeError, Challenges, Operation, valid_value};
use crate::config::{self, Live, LiveSections};
use crate::http::body::{self, BodyLimits};
use crate::http::client::ClientAddress;
use crate::http::response::{self as http_response, text};
use crate::log::Untrusted;
use crate::model::DomainName;
use crate::model::challenge::ChallengeOutcome;

/// The update endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynDns {
    /// Applies updates.
    updater: Updater,
    /// Sets ACME values (`txt=`).
    challenges: Challenges,
    /// `[updates]` as in effect (bodies, `always-200`).
    updates: Live<config::Updates>,
    /// `[acme]` as in effect (`txt=`).
    acme: Live<config::Acme>,
}

impl DynDns {
    /// The endpoints, applying updates with `updater` and `txt=` through `challenges`.
    pub fn new(updater: Updater, challenges: Challenges, live: &LiveSections) -> Self {
        Self {
            updater,
            challenges,
            updates: Arc::clone(&live.updates),
            acme: Arc::clone(&live.acme),
        }
    }

    /// Answers an update request (the route table found `endpoint`).
    pub async fn update(
        &self,
        endpoint: Endpoint,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> http_response::Answer {
        let path = request.uri().path().to_string();
        let (parts, body) = request.into_parts();
        let updates = self.updates.load_full();
        let body = match read_form_body(&parts, body, BodyLimits::from(&*updates)).await {
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
                        self.txt_update(
                            parsed.credentials,
                            hosts,
                            change,
                            client,
                            self.acme.load().lifetime(),
                        ),
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
        respond(&answer, updates.always_200)
    }

    /// `txt=` (or `clear=true`) on the update endpoints: the hosts' challenge values instead
    /// of their addresses, one `good`/`nochg`/`nohost` line per host.
    async fn txt_update(
        &self,
        credentials: Option<Credentials>,
        hosts: Vec<Option<DomainName>>,
        change: TxtChange,
        client: ClientAddress,
        lifetime: Option<Duration>,
    ) -> Answer {
        let Some(lifetime) = lifetime else {
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
                    .challenges
                    .apply(user_id, host, operation, lifetime)
                    .await
                {
                    Ok(ChallengeOutcome::Changed { .. }) => {
                        ReturnCode::Good(AddressList::default())
                    }
                    Ok(ChallengeOutcome::Unchanged) => ReturnCode::Nochg(AddressList::default()),
                    Ok(ChallengeOutcome::NoHost) => ReturnCode::Nohost,
                    Ok(ChallengeOutcome::Disputed(_)) => ReturnCode::Disputed,
                    // Per host, as for address updates: the other hosts' lines stand.
                    Err(ChallengeError::Abuse) => ReturnCode::Abuse,
                    Err(ChallengeError::Store(_)) => return Answer::once(ReturnCode::Dnserr),
                },
            );
        }
        Answer::per_host(codes)
    }
}

/// Reads a form body, if the request has one. Bodies of other content types are ignored
/// (some routers send a `Content-Type` with an empty body); a body that is too large or too
/// slow is refused.
async fn read_form_body(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    limits: BodyLimits,
) -> Result<Option<Vec<u8>>, http_response::Answer> {
    let is_form = body::is_form(parts);
    let bytes = body::collect(parts, body, limits).await?;
    Ok((is_form && !bytes.is_empty()).then(|| bytes.to_vec()))
}

/// The HTTP answer of dyndns2 codes: their status (or 200 with `always_200`), one line per
/// code and, for `badauth`, a Basic challenge (clients that wait for a challenge before
/// sending credentials need it).
fn respond(answer: &Answer, always_200: bool) -> http_response::Answer {
    let status = if always_200 {
        StatusCode::OK
    } else {
        StatusCode::from_u16(answer.status()).expect("dyndns2 statuses are valid")
    };
    let mut response = text(status, &answer.body());
    if answer.is_badauth() {
        http_response::with_basic_challenge(&mut response);
    }
    response
}
