//! The update listener's route table: every path it answers, the methods of each, and who
//! answers it. dyndns, ACME, the account holder's pages and `/domains/my-ip` are handlers
//! below this file that never import each other; 404 and 405 (with `Allow`) come from the
//! table, so no handler lists paths or methods again.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use crate::acme::Acme;
use crate::config::{self, Live, LiveSections};
use crate::dashboard::{Dashboard, Page};
use crate::dyndns::DynDns;
use crate::dyndns::request::Endpoint;
use crate::http::client::{ClientAddress, detect_client};
use crate::http::response::{self, Answer};
use crate::http::{Found, Router};

/// What a path and method lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A dyndns2 update endpoint.
    Update(Endpoint),
    /// `/domains/my-ip`: the caller's address.
    MyIp,
    /// lego's `httpreq`: present (true) or clean up.
    AcmeHttpReq(bool),
    /// acme-dns's `/update`.
    AcmeDns,
    /// A page under `/dashboard`.
    Page(Page),
}

/// The table.
static ROUTES: LazyLock<Router<Route>> = LazyLock::new(|| {
    use Method as M;
    let get = &[M::GET, M::HEAD][..];
    let update = &[M::GET, M::POST][..];
    let post = &[M::POST][..];
    let page = |page| Route::Page(page);
    Router::new()
        .route("/nic/update", update, Route::Update(Endpoint::Nic))
        .route("/domains/nic/update", update, Route::Update(Endpoint::Nic))
        .route("/domains/v2/update", update, Route::Update(Endpoint::Nic))
        .route(
            "/domains/dyndns/update",
            update,
            Route::Update(Endpoint::Nic),
        )
        .route("/domains/update", update, Route::Update(Endpoint::Basic))
        .route("/domains/my-ip", get, Route::MyIp)
        .route("/acme/present", post, Route::AcmeHttpReq(true))
        .route("/acme/cleanup", post, Route::AcmeHttpReq(false))
        .route("/update", post, Route::AcmeDns)
        .route("/dashboard", get, page(Page::Domains))
        .route("/dashboard/login", get, page(Page::SignInForm))
        .route("/dashboard/login", post, page(Page::SignIn))
        .route("/dashboard/logout", get, page(Page::SignedOut))
        .route("/dashboard/logout", post, page(Page::SignOut))
        .route("/dashboard/api-keys", get, page(Page::Keys))
        .route("/dashboard/api-keys", post, page(Page::CreateKey))
        .route(
            "/dashboard/api-keys/{id}/revoke",
            post,
            page(Page::RevokeKey),
        )
        .route(
            "/dashboard/domains/{fqdn}/history",
            get,
            page(Page::History),
        )
        .route("/dashboard/domains/{fqdn}/help", get, page(Page::Help))
        .route("/dashboard/guide", get, page(Page::Guide))
        .route("/dashboard/static/{*file}", get, page(Page::Static))
});

/// The update listener's service: the table and its handlers.
#[derive(Debug)]
pub struct UpdateService {
    /// The update endpoints.
    dyndns: DynDns,
    /// The ACME endpoints.
    acme: Acme,
    /// The account holder's pages, when enabled.
    dashboard: Option<Dashboard>,
    /// `[updates]` as in effect: the peers whose `X-Forwarded-For` is believed.
    updates: Live<config::Updates>,
}

impl UpdateService {
    /// The service of `dyndns`, `acme` and, when enabled, `dashboard`, believing the proxies
    /// of `live`'s `[updates]` (each handler reads its own sections of `live`: a reload swaps
    /// them under all of them at once).
    pub fn new(
        dyndns: DynDns,
        acme: Acme,
        dashboard: Option<Dashboard>,
        live: &LiveSections,
    ) -> Self {
        Self {
            dyndns,
            acme,
            dashboard,
            updates: Arc::clone(&live.updates),
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let client = detect_client(
            peer,
            request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(HeaderValue::as_bytes),
            &self.updates.load().trusted_proxies,
        );
        let path = request.uri().path();
        let under_pages = path == "/dashboard" || path.starts_with("/dashboard/");
        let pages = self.dashboard.as_ref().filter(|_| under_pages);
        if under_pages && pages.is_none() {
            return response::not_found();
        }
        match ROUTES.find(request.method(), path) {
            Found::Route(route, params) => match route {
                Route::Update(endpoint) => self.dyndns.update(endpoint, request, client).await,
                Route::MyIp => my_ip(client),
                Route::AcmeHttpReq(present) => self.acme.httpreq(request, client, present).await,
                Route::AcmeDns => self.acme.acme_dns_update(request, client).await,
                Route::Page(page) => match pages {
                    Some(pages) => pages.handle(page, params, request, client).await,
                    None => response::not_found(),
                },
            },
            Found::NotAllowed(allowed) => {
                let mut answer = response::method_not_allowed(&allowed);
                if pages.is_some() {
                    crate::dashboard::with_page_headers(&mut answer);
                }
                answer
            }
            Found::NotFound => match pages {
                Some(pages) => pages.not_found(&request),
                None => response::not_found(),
            },
        }
    }
}

/// `/domains/my-ip`: the caller's address as JSON, no authentication.
fn my_ip(client: ClientAddress) -> Answer {
    let body = serde_json::json!({ "ip": client.source.to_string() }).to_string();
    response::json(StatusCode::OK, &body)
}
