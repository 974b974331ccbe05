//! The HTTP connector: pdns's three request styles under one base path (`/dns`), decoded into
//! a [`Query`], answered as JSON.
//!
//! * `post=1,post_json=1`: `POST /dns` with the request object as the body.
//! * `post=1`: `POST /dns/<method>` with the body `parameters=<url-encoded JSON>`.
//! * REST (default): `<verb> /dns/<method>/<segment>...`, every segment percent-encoded (even
//!   `.` as `%2e`), lookup context in `X-RemoteBackend-*` headers; rebuilt here into the
//!   parameters object the JSON modes send.
//!
//! Every answer is 200 with a JSON body framed by `Content-Length` (anything else makes pdns
//! SERVFAIL or drop the connection); a path outside the base gets 404 with `{"result":false}`,
//! which pdns also reads as a clean "no".

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::Backend;
use super::protocol::{DecodeError, Query, Reply};
use crate::inflight::ConnectionSlot;

/// The path every pdns request lives under (`url=http://host:port/dns`).
const BASE_PATH: &str = "/dns";

/// Largest request body taken: pdns requests are a few hundred bytes (the largest, a
/// `replaceRRSet`, a few KB).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP face of the backend.
#[derive(Debug, Clone)]
pub struct BackendHttpService {
    /// Answers the decoded queries.
    backend: Backend,
}

impl BackendHttpService {
    /// A service answering with `backend`.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// Answers one request. A lookup's name goes to its connection's slot (when `net.rs` put
    /// one in the request's extensions) before the store is read, and every other request
    /// clears it: see `inflight.rs`.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let slot = request.extensions().get::<ConnectionSlot>().cloned();
        let begin = |name: Option<&str>| {
            if let Some(ConnectionSlot(slot)) = &slot {
                slot.begin(name);
            }
        };
        let Some(rest) = request
            .uri()
            .path()
            .strip_prefix(BASE_PATH)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(str::to_string)
        else {
            begin(None);
            return json(
                StatusCode::NOT_FOUND,
                &Reply::refusal("certadns-ddns: not a backend path"),
            );
        };
        let query = match decode(request, &rest).await {
            Ok(query) => query,
            Err(error) => {
                begin(None);
                tracing::debug!(%error, "remote backend: undecodable request");
                return json(
                    StatusCode::OK,
                    &Reply::refusal(format!("certadns-ddns: {error}")),
                );
            }
        };
        begin(query.lookup_name());
        json(StatusCode::OK, &self.backend.handle_async(query).await)
    }
}

/// Decodes a request in whichever of the three styles it comes, reading its body only when
/// that style has one.
async fn decode(request: Request<Incoming>, rest: &str) -> Result<Query, DecodeError> {
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST || is_form(&parts.headers) {
        read_body(body).await?
    } else {
        Bytes::new()
    };
    decode_request(&parts.method, rest, &parts.headers, &body)
}

/// Decodes one request of pdns's HTTP connector: `rest` is the path after the base path
/// (`/lookup/www.example.com./A`, or empty), `body` the request body (empty when it has none).
/// Three styles: a JSON object posted to the base path (`post_json`), a form posted to
/// `/{method}` (`post`), or REST (`/{method}/{arguments...}` with `X-RemoteBackend-*` headers
/// and, for PATCH, form fields).
pub fn decode_request(
    method: &Method,
    rest: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<Query, DecodeError> {
    let segments: Vec<String> = rest
        .split('/')
        .skip(1)
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let is_post = method == Method::POST;
    match segments.as_slice() {
        [] if is_post => Query::from_json(body),
        [method] if is_post && is_form(headers) => {
            let parameters = form_urlencoded::parse(body)
                .find(|(name, _)| name == "parameters")
                .map(|(_, value)| value.into_owned())
                .unwrap_or_else(|| "{}".into());
            let parameters: Value = serde_json::from_str(&parameters)
                .map_err(|error| DecodeError::Envelope(error.to_string()))?;
            Query::from_method(method, &parameters)
        }
        [method, arguments @ ..] => {
            let mut parameters = rest_parameters(method, arguments, headers);
            // Verbs with a body send form fields: setNotified's `serial=...`, addDomainKey's
            // `flags=&active=&published=&content=`, setDomainMetadata's `value[]=...` (each).
            if is_form(headers) {
                let mut values = Vec::new();
                for (name, value) in form_urlencoded::parse(body) {
                    if name == "value[]" {
                        values.push(Value::String(value.into_owned()));
                        continue;
                    }
                    parameters
                        .entry(name.into_owned())
                        .or_insert_with(|| Value::String(value.into_owned()));
                }
                if method == "setDomainMetadata" {
                    parameters.insert("value".into(), Value::Array(values));
                }
            }
            if method == "addDomainKey" && !parameters.contains_key("key") {
                // The JSON modes nest the key's fields under `key`; REST sends them flat.
                let key: Map<String, Value> = ["flags", "active", "published", "content"]
                    .into_iter()
                    .filter_map(|field| Some((field.to_string(), parameters.remove(field)?)))
                    .collect();
                parameters.insert("key".into(), Value::Object(key));
            }
            Query::from_method(method, &Value::Object(parameters))
        }
        [] => Err(DecodeError::Envelope("no method".into())),
    }
}

/// The parameters object of a REST request: path segments named per method (§2.2: they
/// follow the parameter names, in pdns's fixed order) and the `X-RemoteBackend-*` headers.
fn rest_parameters(
    method: &str,
    arguments: &[String],
    headers: &hyper::HeaderMap,
) -> Map<String, Value> {
    let names: &[&str] = match method {
        "lookup" | "APILookup" => &["qname", "qtype"],
        "list" => &["domain_id", "zonename"],
        "getDomainInfo"
        | "getAllDomainMetadata"
        | "getDomainKeys"
        | "addDomainKey"
        | "getTSIGKey"
        | "setTSIGKey"
        | "deleteTSIGKey" => &["name"],
        "getDomainMetadata" | "setDomainMetadata" => &["name", "kind"],
        "setNotified" => &["id"],
        // `id` goes first in pdns's path, whatever the method.
        "activateDomainKey"
        | "deactivateDomainKey"
        | "publishDomainKey"
        | "unpublishDomainKey"
        | "removeDomainKey" => &["id", "name"],
        "getBeforeAndAfterNamesAbsolute" => &["id", "qname"],
        "startTransaction" => &["domain_id", "domain", "trxid"],
        "commitTransaction" | "abortTransaction" => &["trxid"],
        _ => &[],
    };
    let mut parameters: Map<String, Value> = names
        .iter()
        .zip(arguments)
        .map(|(name, value)| ((*name).to_string(), Value::String(value.clone())))
        .collect();
    for name in ["zone-id", "remote", "local", "real-remote"] {
        let header = format!("x-remotebackend-{name}");
        if let Some(value) = headers
            .get(header.as_str())
            .and_then(|value| value.to_str().ok())
        {
            parameters.insert(name.to_string(), Value::String(value.to_string()));
        }
    }
    parameters
}

/// Whether the body is a form (`post=1` mode).
fn is_form(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Reads a request body of bounded size and time.
async fn read_body(body: Incoming) -> Result<Bytes, DecodeError> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => Err(DecodeError::Envelope(format!("request body: {error}"))),
        Err(_) => Err(DecodeError::Envelope(
            "request body not received in time".into(),
        )),
    }
}

/// A JSON response; `Full` bodies are framed by `Content-Length`.
fn json(status: StatusCode, reply: &Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.to_json())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::backend::protocol::KeyChange;
    use crate::model::dnssec::KeyState;

    fn form() -> hyper::HeaderMap {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers
    }

    /// pdns 4.7.3's REST requests for the DNSSEC calls, as `restful_requestbuilder` builds them.
    #[test]
    fn rest_dnssec_calls_decode_from_their_paths_and_form_bodies() {
        let add = decode_request(
            &Method::PUT,
            "/addDomainKey/example%2ecom%2e",
            &form(),
            b"active=1&content=Private%2dkey%2dformat%3a%20v1%2e2%0aAlgorithm%3a%2013&flags=257&published=0",
        )
        .unwrap();
        let Query::AddDomainKey { name, key } = add else {
            panic!("{add:?}");
        };
        assert_eq!(name, "example.com.");
        assert_eq!((key.flags, key.active, key.published), (257, true, false));
        assert_eq!(key.content, "Private-key-format: v1.2\nAlgorithm: 13");
        assert_eq!(
            decode_request(
                &Method::POST,
                "/activateDomainKey/7/example%2ecom%2e",
                &form(),
                b""
            )
            .unwrap(),
            Query::ChangeDomainKey {
                name: "example.com.".into(),
                id: 7,
                change: KeyChange::State(KeyState::Active(true))
            }
        );
        assert_eq!(
            decode_request(
                &Method::DELETE,
                "/removeDomainKey/7/example%2ecom%2e",
                &hyper::HeaderMap::new(),
                b""
            )
            .unwrap(),
            Query::ChangeDomainKey {
                name: "example.com.".into(),
                id: 7,
                change: KeyChange::Remove
            }
        );
        assert_eq!(
            decode_request(
                &Method::PATCH,
                "/setDomainMetadata/example%2ecom%2e/TSIG%2dALLOW%2dAXFR",
                &form(),
                b"value[]=a%2e&value[]=b%2e"
            )
            .unwrap(),
            Query::SetDomainMetadata {
                name: "example.com.".into(),
                kind: "TSIG-ALLOW-AXFR".into(),
                values: vec!["a.".into(), "b.".into()]
            }
        );
        // No values: the kind is deleted.
        let Query::SetDomainMetadata { values, .. } = decode_request(
            &Method::PATCH,
            "/setDomainMetadata/example%2ecom%2e/NSEC3NARROW",
            &form(),
            b"",
        )
        .unwrap() else {
            panic!("a setDomainMetadata");
        };
        assert!(values.is_empty());
        assert_eq!(
            decode_request(
                &Method::POST,
                "/startTransaction/%2d1/example%2ecom%2e/1700000000",
                &form(),
                b""
            )
            .unwrap(),
            Query::StartTransaction { domain_id: -1 }
        );
        assert_eq!(
            decode_request(
                &Method::GET,
                "/getDomainKeys/example%2ecom%2e",
                &hyper::HeaderMap::new(),
                b""
            )
            .unwrap(),
            Query::GetDomainKeys {
                name: "example.com.".into()
            }
        );
    }
}
