//! The account holder's pages (`/dashboard`), on the update listener: sign-in, the user's
//! domains with the Update Help of each, each domain's update history, the user's API keys.
//!
//! [`Dashboard::handle`] is the one router. Each user sees only their own rows: every read
//! takes the session's user id, and a name or key of someone else answers as one that does
//! not exist (404). Signing in is checked by [`Authenticator::sign_in`], the same code as Basic
//! authentication on the update endpoints, so the throttle and the password-check limits
//! hold here too. `session` holds the cookies and the CSRF tokens; `pages` the HTML.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles only from
//! `/dashboard/static/`, no frames, forms only to this origin) and `no-store`, except the
//! static files, which are immutable under their content-hashed URL.

// `Err` here is the page to answer with (a redirect, a refusal): one per request, moved once,
// never in a loop; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod pages;
mod session;

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use maud::Markup;

use self::pages::{Frame, KeysNotice, Nav, Paging};
use self::session::{Cookies, Token};
use crate::auth::{AuthError, Authenticator};
use crate::config::{self, Live, LiveSections};
use crate::http::body::{self, BodyLimits};
use crate::http::client::ClientAddress;
use crate::http::response::{self, Answer, redirect};
use crate::model::account::User;
use crate::model::audit::PageStart;
use crate::model::{DomainName, SCOPE_DOMAINS_UPDATE};
use crate::served::StoreError;
use crate::served::{KeyRefusal, Served};
use crate::update_help::{Subject, UpdateHelp};

/// The pages, as the route table (`routes.rs`) names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `GET /dashboard`: the user's domains.
    Domains,
    /// `GET /dashboard/login`.
    SignInForm,
    /// `POST /dashboard/login`.
    SignIn,
    /// `POST /dashboard/logout`.
    SignOut,
    /// `GET /dashboard/logout`: back to the pages.
    SignedOut,
    /// `GET /dashboard/api-keys`.
    Keys,
    /// `POST /dashboard/api-keys`.
    CreateKey,
    /// `POST /dashboard/api-keys/{id}/revoke`.
    RevokeKey,
    /// `GET /dashboard/domains/{fqdn}/history`.
    History,
    /// `GET /dashboard/domains/{fqdn}/help`.
    Help,
    /// `GET /dashboard/guide`.
    Guide,
    /// `GET /dashboard/static/{file}`: the script and the style sheet.
    Static,
}

/// The pages. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The store.
    served: Served,
    /// Checks sign-ins as Basic authentication is checked.
    authenticator: Authenticator,
    /// `[dashboard]` as in effect.
    dashboard: Live<config::Dashboard>,
    /// `[updates]` as in effect: `public-url` and the body limits.
    updates: Live<config::Updates>,
}

/// The settings in effect for one request: both sections, and the cookies they call for.
struct Settings {
    /// `[dashboard]`.
    dashboard: Arc<config::Dashboard>,
    /// `[updates]`.
    updates: Arc<config::Updates>,
    /// The cookies, `Secure` (and `__Host-` named) when `public-url` is https.
    cookies: Cookies,
}

/// The script and the style sheet, with the URLs they are served under: the content's hash is
/// in the query, so browsers may keep them for good and never run an old script after an
/// upgrade.
static ASSETS: LazyLock<[(String, &'static str, &'static str); 2]> = LazyLock::new(|| {
    let versioned = |path: &str, content: &str| {
        let hash = crate::auth::hash_api_key(content);
        format!("{path}?v={}", &hash[..12])
    };
    [
        (
            versioned(pages::SCRIPT_PATH, SCRIPT),
            "text/javascript; charset=utf-8",
            SCRIPT,
        ),
        (
            versioned(pages::STYLE_PATH, STYLE),
            "text/css; charset=utf-8",
            STYLE,
        ),
    ]
});

/// The pages' script: dialog, tabs, copy buttons.
const SCRIPT: &str = include_str!("static/dashboard.js");
/// The pages' style sheet.
const STYLE: &str = include_str!("static/dashboard.css");

/// The Content-Security-Policy of every page: nothing but this origin's static files.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'none'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// A signed-in request: the user and their session token.
struct SignedIn {
    /// The user, active.
    user: User,
    /// The session token (for the CSRF token of the forms).
    token: Token,
}

impl SignedIn {
    /// The frame of a page of this user.
    fn frame(&self, csrf: &str, nav: Nav) -> FrameData {
        FrameData {
            user: self.user.clone(),
            csrf: csrf.to_string(),
            nav,
        }
    }
}

/// Owned parts of a [`Frame`].
struct FrameData {
    user: User,
    csrf: String,
    nav: Nav,
}

impl FrameData {
    /// The frame.
    fn frame(&self) -> Frame<'_> {
        Frame {
            user: &self.user,
            csrf: &self.csrf,
            nav: self.nav,
        }
    }
}

impl Dashboard {
    /// The pages over `served`, signing in with `authenticator`, with the sections of `live`
    /// (a reload swaps them: a `public-url` that turns https renames the session cookie,
    /// `__Host-`, and whoever was signed in signs in again).
    pub fn new(served: Served, authenticator: Authenticator, live: &LiveSections) -> Self {
        Self {
            served,
            authenticator,
            dashboard: Arc::clone(&live.dashboard),
            updates: Arc::clone(&live.updates),
        }
    }

    /// The settings in effect.
    fn settings(&self) -> Settings {
        let updates = self.updates.load_full();
        let secure = updates
            .public_base()
            .is_some_and(|url| url.starts_with("https://"));
        Settings {
            dashboard: self.dashboard.load_full(),
            updates,
            cookies: Cookies::new(secure),
        }
    }

    /// Answers `page` (the route table found it; `params`: its path's `{name}` segments) from
    /// `client`, with the pages' security headers.
    pub async fn handle(
        &self,
        page: Page,
        params: Vec<String>,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> Answer {
        let param = params.into_iter().next().unwrap_or_default();
        let answer = match page {
            Page::Static => return static_file(&param),
            Page::SignInForm => self.sign_in_form(&request),
            Page::SignIn => self.sign_in(request, client).await,
            Page::SignOut => self.sign_out(request).await,
            Page::SignedOut => Ok(redirect("/dashboard")),
            Page::Domains => self.domains(&request),
            Page::Keys => self.keys(&request, &KeysNotice::None, StatusCode::OK),
            Page::CreateKey => self.create_key(request).await,
            Page::RevokeKey => self.revoke_key(request, &param).await,
            Page::History => self.history(&request, &param),
            Page::Help => self.help(&request, &param),
            Page::Guide => self.guide(&request),
        };
        let mut answer = match answer {
            Ok(answer) | Err(answer) => answer,
        };
        with_page_headers(&mut answer);
        answer
    }

    /// The page for a path under `/dashboard` that does not exist: 404, in the frame of the
    /// signed-in user's pages when there is one.
    pub fn not_found(&self, request: &Request<Incoming>) -> Answer {
        let mut answer = match self.signed_in(request.headers()) {
            Ok(signed_in) => {
                let frame = signed_in.map(|signed_in| {
                    let csrf = signed_in.token.csrf();
                    signed_in.frame(&csrf, Nav::None)
                });
                page(
                    StatusCode::NOT_FOUND,
                    pages::not_found(frame.as_ref().map(FrameData::frame).as_ref()),
                )
            }
            Err(answer) => answer,
        };
        with_page_headers(&mut answer);
        answer
    }

    /// The user of the request's session cookie, if it names a live session.
    fn signed_in(&self, headers: &HeaderMap) -> Result<Option<SignedIn>, Answer> {
        let cookies = &self.settings().cookies;
        let Some(token) = cookies
            .session(cookie_headers(headers))
            .map_err(|_| self.duplicate_cookies())?
        else {
            return Ok(None);
        };
        let user = self
            .served
            .session_user(&token.stored_hash())
            .map_err(store_failure)?;
        Ok(user.map(|user| SignedIn { user, token }))
    }

    /// The answer to a request with two cookies of one name (see `session::DuplicateCookie`):
    /// 400, neither taken, this site's own cookies removed, and what to do.
    fn duplicate_cookies(&self) -> Answer {
        let mut answer = page(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Two session cookies",
                None,
                "Your browser sent two cookies of the same name for these pages, so neither \
                 is used: another site under the same domain may have set one. Clear this \
                 site's cookies (and its parent domain's), then sign in again.",
            ),
        );
        let cookies = &self.settings().cookies;
        set_cookie(&mut answer, &cookies.clear_session());
        set_cookie(&mut answer, &cookies.clear_sign_in());
        answer
    }

    /// The signed-in user, or (`Err`) a redirect to the sign-in page.
    fn require_user(&self, headers: &HeaderMap) -> Result<SignedIn, Answer> {
        self.signed_in(headers)?
            .ok_or_else(|| redirect("/dashboard/login"))
    }

    /// The signed-in user of a form that changes something, with the form's fields: refused
    /// (403) when it comes from another site, when the session is missing or when its CSRF
    /// token is not the session's.
    async fn require_form(
        &self,
        request: Request<Incoming>,
    ) -> Result<(SignedIn, Vec<(String, String)>), Answer> {
        refuse_other_sites(request.headers(), self.settings().updates.public_base())?;
        let signed_in = self.signed_in(request.headers())?.ok_or_else(|| {
            page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Signed out",
                    None,
                    "Your session has ended, or this form did not come from these pages. \
                     Sign in again and retry.",
                ),
            )
        })?;
        let fields = self.read_form(request).await?;
        check_csrf(&signed_in.token, &fields)?;
        Ok((signed_in, fields))
    }

    /// The fields of a form body.
    async fn read_form(&self, request: Request<Incoming>) -> Result<Vec<(String, String)>, Answer> {
        let (parts, body) = request.into_parts();
        let limits = BodyLimits::from(&*self.settings().updates);
        let bytes = body::collect(&parts, body, limits).await?;
        Ok(form_urlencoded::parse(&bytes).into_owned().collect())
    }

    /// `GET /dashboard/login`: the form, with a fresh sign-in cookie; signed-in users go to
    /// their domains.
    fn sign_in_form(&self, request: &Request<Incoming>) -> Result<Answer, Answer> {
        if self.signed_in(request.headers())?.is_some() {
            return Ok(redirect("/dashboard"));
        }
        Ok(self.sign_in_page(StatusCode::OK, "", None))
    }

    /// The sign-in page with a new sign-in token.
    fn sign_in_page(&self, status: StatusCode, login: &str, error: Option<&str>) -> Answer {
        let token = Token::generate();
        let mut answer = page(status, pages::sign_in(&token.csrf(), login, error));
        set_cookie(&mut answer, &self.settings().cookies.set_sign_in(&token));
        answer
    }

    /// `POST /dashboard/login`: checks the login as Basic authentication would, then opens a
    /// session.
    async fn sign_in(
        &self,
        request: Request<Incoming>,
        client: ClientAddress,
    ) -> Result<Answer, Answer> {
        refuse_other_sites(request.headers(), self.settings().updates.public_base())?;
        let form_token = self
            .settings()
            .cookies
            .sign_in(cookie_headers(request.headers()))
            .map_err(|_| self.duplicate_cookies())?;
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(512).collect::<String>());
        let fields = self.read_form(request).await?;
        let submitted = field(&fields, "csrf").unwrap_or_default();
        if !form_token.is_some_and(|token| token.accepts_csrf(submitted)) {
            return Err(self.sign_in_page(
                StatusCode::FORBIDDEN,
                "",
                Some("This sign-in form expired or did not come from this site. Please try again."),
            ));
        }
        let login = field(&fields, "login")
            .unwrap_or_default()
            .trim()
            .to_string();
        let password = field(&fields, "password").unwrap_or_default().to_string();
        // Shown again in the form after a failure, at most what the field allows. Never
        // logged (nor is any login on the update endpoints).
        let shown_login: String = login.chars().take(254).collect();
        if login.is_empty() || password.is_empty() {
            return Err(self.sign_in_page(
                StatusCode::BAD_REQUEST,
                &shown_login,
                Some("Enter your username or email and your password."),
            ));
        }
        let source = client.source;
        let user_id = match self.authenticator.sign_in(login, password, source).await {
            Ok(user_id) => user_id,
            Err(AuthError::Busy) => {
                tracing::warn!(client = %source, "sign-in refused: password checks queue full");
                return Err(page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::message(
                        "Busy",
                        None,
                        "Too many sign-ins are being checked right now. Please try again in a \
                         minute.",
                    ),
                ));
            }
            Err(AuthError::Throttled(seconds)) => {
                tracing::info!(client = %source, "sign-in refused: too many attempts");
                let minutes = seconds.div_ceil(60);
                let mut answer = self.sign_in_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    &shown_login,
                    Some(&format!(
                        "Too many sign-in attempts. Please try again in {minutes} minute{}.",
                        if minutes == 1 { "" } else { "s" }
                    )),
                );
                if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                    answer.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return Err(answer);
            }
            Err(AuthError::Refused) => {
                tracing::info!(client = %source, "sign-in refused");
                return Err(self.sign_in_page(
                    StatusCode::UNAUTHORIZED,
                    &shown_login,
                    Some("Incorrect username, email or password."),
                ));
            }
            Err(AuthError::Store(error)) => return Err(store_failure(error)),
            Err(AuthError::Broken) => {
                return Err(store_failure(StoreError::Task("sign-in".into())));
            }
        };
        let token = Token::generate();
        let lifetime = self.settings().dashboard.session_lifetime;
        self.served
            .open_session(
                token.stored_hash(),
                user_id,
                lifetime,
                Some(client.source.to_string()),
                user_agent,
            )
            .await
            .map_err(store_failure)?;
        tracing::info!(user_id, client = %source, "signed in");
        let mut answer = redirect("/dashboard");
        set_cookie(
            &mut answer,
            &self.settings().cookies.set_session(&token, lifetime),
        );
        set_cookie(&mut answer, &self.settings().cookies.clear_sign_in());
        Ok(answer)
    }

    /// `POST /dashboard/logout`: ends the session. A request without a live session goes to
    /// the sign-in page (and drops the dead cookie); one with a live session but without its
    /// CSRF token is refused, the cookie left alone, so another site cannot sign anyone out.
    async fn sign_out(&self, request: Request<Incoming>) -> Result<Answer, Answer> {
        refuse_other_sites(request.headers(), self.settings().updates.public_base())?;
        let Some(signed_in) = self.signed_in(request.headers())? else {
            let mut answer = redirect("/dashboard/login");
            set_cookie(&mut answer, &self.settings().cookies.clear_session());
            return Ok(answer);
        };
        let fields = self.read_form(request).await?;
        check_csrf(&signed_in.token, &fields)?;
        self.served
            .end_session(signed_in.token.stored_hash())
            .await
            .map_err(store_failure)?;
        let mut answer = redirect("/dashboard/login");
        set_cookie(&mut answer, &self.settings().cookies.clear_session());
        Ok(answer)
    }

    /// The base of the URLs in the help: `public-url`, else the host the browser asked for.
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = self.settings().updates.public_base() {
            return url.to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| {
                !host.is_empty()
                    && host.len() <= 255
                    && host
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// `GET /dashboard`: the user's domains, each with its Update Help dialog.
    fn domains(&self, request: &Request<Incoming>) -> Result<Answer, Answer> {
        let signed_in = self.require_user(request.headers())?;
        let user = &signed_in.user;
        let domains = self.served.user_domains(user.id).map_err(store_failure)?;
        let key_prefixes: Vec<String> = self
            .served
            .user_keys(user.id)
            .map_err(store_failure)?
            .into_iter()
            .filter(|key| key.is_active && key.has_scope(SCOPE_DOMAINS_UPDATE))
            .map(|key| key.prefix)
            .collect();
        let base = self.base_url(request.headers());
        let mut helps: Vec<UpdateHelp> = Vec::new();
        for domain in &domains {
            if helps.iter().any(|help| help.fqdn == domain.fqdn) {
                continue;
            }
            let subject = Subject {
                fqdn: domain.fqdn.clone(),
                types: domains
                    .iter()
                    .filter(|other| other.fqdn == domain.fqdn)
                    .map(|other| other.record_type)
                    .collect(),
                owner: user.username.clone(),
                plan: user.plan,
                key_prefixes: key_prefixes.clone(),
            };
            helps.push(UpdateHelp::new(&subject, &base));
        }
        let csrf = signed_in.token.csrf();
        let frame = signed_in.frame(&csrf, Nav::Domains);
        Ok(page(
            StatusCode::OK,
            pages::domains(&frame.frame(), &domains, &helps),
        ))
    }

    /// `GET /dashboard/domains/FQDN/help`: the Update Help as a page.
    fn help(&self, request: &Request<Incoming>, fqdn: &str) -> Result<Answer, Answer> {
        let signed_in = self.require_user(request.headers())?;
        let csrf = signed_in.token.csrf();
        let frame = signed_in.frame(&csrf, Nav::Domains);
        let subject = match name_in_path(fqdn) {
            Some(name) => self
                .served
                .help_subject(&signed_in.user, &name)
                .map_err(store_failure)?,
            None => None,
        };
        let Some(subject) = subject else {
            return Ok(not_yours(&frame));
        };
        let help = UpdateHelp::new(&subject, &self.base_url(request.headers()));
        Ok(page(
            StatusCode::OK,
            pages::help_page(&frame.frame(), &help),
        ))
    }

    /// `GET /dashboard/domains/FQDN/history[?before=ID|after=ID]`: one page of the domain's
    /// audit rows.
    fn history(&self, request: &Request<Incoming>, fqdn: &str) -> Result<Answer, Answer> {
        let signed_in = self.require_user(request.headers())?;
        let csrf = signed_in.token.csrf();
        let frame = signed_in.frame(&csrf, Nav::Domains);
        let Some(name) = name_in_path(fqdn) else {
            return Ok(not_yours(&frame));
        };
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let id = |key: &str| field(&query, key).and_then(|value| value.parse::<i64>().ok());
        let start = match (id("before"), id("after")) {
            (Some(before), _) => PageStart::Before(before),
            (None, Some(after)) => PageStart::After(after),
            (None, None) => PageStart::Newest,
        };
        let size = self.settings().dashboard.history_page_size;
        // One row more than shown tells whether there is a page beyond.
        let rows = self
            .served
            .user_history(signed_in.user.id, &name, start, size + 1)
            .map_err(store_failure)?;
        let Some(mut rows) = rows else {
            return Ok(not_yours(&frame));
        };
        let more = rows.len() > size as usize;
        if more {
            match start {
                // Rows come newest first; the extra one is the oldest for Before/Newest, the
                // newest for After.
                PageStart::After(_) => {
                    rows.remove(0);
                }
                _ => {
                    rows.pop();
                }
            }
        }
        let path = pages::domain_path(&name, "history");
        let (first, last) = (
            rows.first().map(|row| row.id),
            rows.last().map(|row| row.id),
        );
        let paging = Paging {
            newer: match start {
                PageStart::Newest => None,
                PageStart::After(_) if !more => None,
                _ => first.map(|id| format!("{path}?after={id}")),
            },
            older: match start {
                PageStart::After(_) => last.map(|id| format!("{path}?before={id}")),
                _ if more => last.map(|id| format!("{path}?before={id}")),
                _ => None,
            },
        };
        Ok(page(
            StatusCode::OK,
            pages::history(&frame.frame(), &name, &rows, &paging),
        ))
    }

    /// `GET /dashboard/api-keys`: the user's keys, with `notice` above them.
    fn keys(
        &self,
        request: &Request<Incoming>,
        notice: &KeysNotice<'_>,
        status: StatusCode,
    ) -> Result<Answer, Answer> {
        let signed_in = self.require_user(request.headers())?;
        Ok(self.keys_page(&signed_in, notice, status))
    }

    /// The keys page of `signed_in`.
    fn keys_page(
        &self,
        signed_in: &SignedIn,
        notice: &KeysNotice<'_>,
        status: StatusCode,
    ) -> Answer {
        let keys = match self.served.user_keys(signed_in.user.id) {
            Ok(keys) => keys,
            Err(error) => return store_failure(error),
        };
        let tsig_keys = match self.served.user_tsig_keys(signed_in.user.id) {
            Ok(keys) => keys,
            Err(error) => return store_failure(error),
        };
        let csrf = signed_in.token.csrf();
        let frame = signed_in.frame(&csrf, Nav::Keys);
        page(
            status,
            pages::api_keys(&frame.frame(), &keys, &tsig_keys, notice),
        )
    }

    /// `POST /dashboard/api-keys`: creates a key with scope `domains:update` and shows it once.
    async fn create_key(&self, request: Request<Incoming>) -> Result<Answer, Answer> {
        let (signed_in, fields) = self.require_form(request).await?;
        if field(&fields, "scope").is_some_and(|scope| scope != SCOPE_DOMAINS_UPDATE) {
            return Ok(self.keys_page(
                &signed_in,
                &KeysNotice::Refused("Unknown scope: keys made here update domains."),
                StatusCode::BAD_REQUEST,
            ));
        }
        let key = crate::auth::generate_api_key();
        let created = self
            .served
            .create_user_key(
                &signed_in.user,
                key.prefix.clone(),
                key.hash.clone(),
                vec![SCOPE_DOMAINS_UPDATE.to_string()],
                self.authenticator.revoked_key_retention(),
            )
            .await;
        match created {
            Ok(()) => {
                tracing::info!(user_id = signed_in.user.id, prefix = %key.prefix, "API key created");
                Ok(self.keys_page(
                    &signed_in,
                    &KeysNotice::Created(&key.secret),
                    StatusCode::OK,
                ))
            }
            Err(KeyRefusal::Store(error)) => Err(store_failure(error)),
            Err(refusal) => Ok(self.keys_page(
                &signed_in,
                &KeysNotice::Refused(&refusal.to_string()),
                if matches!(refusal, KeyRefusal::TooFast(_)) {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::FORBIDDEN
                },
            )),
        }
    }

    /// `POST /dashboard/api-keys/ID/revoke`: revokes one of the user's keys.
    async fn revoke_key(&self, request: Request<Incoming>, id: &str) -> Result<Answer, Answer> {
        let (signed_in, _) = self.require_form(request).await?;
        let key = id.parse::<i64>().ok().and_then(|id| {
            self.served
                .user_keys(signed_in.user.id)
                .ok()?
                .into_iter()
                .find(|key| key.id == id)
        });
        let Some(key) = key else {
            let csrf = signed_in.token.csrf();
            return Ok(not_yours(&signed_in.frame(&csrf, Nav::Keys)));
        };
        self.served
            .revoke_user_key(signed_in.user.id, key.id)
            .await
            .map_err(store_failure)?;
        tracing::info!(user_id = signed_in.user.id, prefix = %key.prefix, "API key revoked");
        Ok(self.keys_page(
            &signed_in,
            &KeysNotice::Revoked(&key.prefix),
            StatusCode::OK,
        ))
    }

    /// `GET /dashboard/guide`: the router setup guide.
    fn guide(&self, request: &Request<Incoming>) -> Result<Answer, Answer> {
        let signed_in = self.require_user(request.headers())?;
        let base = self.base_url(request.headers());
        // The user's own first name (or a placeholder): the examples show their settings.
        let host = self
            .served
            .user_domains(signed_in.user.id)
            .map_err(store_failure)?
            .into_iter()
            .next()
            .map_or_else(|| "your-host.example.net".to_string(), |domain| domain.fqdn);
        let settings = UpdateHelp::new(
            &Subject {
                fqdn: host.clone(),
                types: vec![crate::model::RecordType::A],
                owner: signed_in.user.username.clone(),
                plan: signed_in.user.plan,
                key_prefixes: Vec::new(),
            },
            &base,
        );
        let server = base.split("://").nth(1).unwrap_or(&base).to_string();
        let csrf = signed_in.token.csrf();
        let frame = signed_in.frame(&csrf, Nav::Guide);
        let reader = pages::Reader {
            server: &server,
            https: base.starts_with("https://"),
            login: &signed_in.user.username,
            host: &host,
        };
        Ok(page(
            StatusCode::OK,
            pages::guide(&frame.frame(), &reader, &settings),
        ))
    }
}

/// A domain name from a path segment (percent-decoded, validated, lower case); `None` for
/// anything that cannot be a name.
fn name_in_path(segment: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    decoded
        .parse::<DomainName>()
        .ok()
        .map(|name| name.as_str().to_string())
}

/// The 404 of a name or key the user does not hold (whoever else may).
fn not_yours(frame: &FrameData) -> Answer {
    page(
        StatusCode::NOT_FOUND,
        pages::not_found(Some(&frame.frame())),
    )
}

/// The first value of `key` in form or query `fields`.
fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// The `Cookie` headers of a request.
fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
}

/// Refuses (403) a state change that a browser says comes from another site or another
/// origin: `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` that is neither
/// `public-url`'s nor the request's own host. Requests without those headers (older browsers,
/// scripts) go on to the CSRF token check.
fn refuse_other_sites(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), Answer> {
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    if let Some(site) = header_text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(csrf_refused());
        }
    }
    if let Some(origin) = header_text("origin") {
        let host = header_text("host").unwrap_or_default();
        let own = [format!("http://{host}"), format!("https://{host}")];
        let trusted = !host.is_empty() && own.iter().any(|own| own == origin)
            || public_url.is_some_and(|url| origin_of(url) == origin);
        if !trusted {
            return Err(csrf_refused());
        }
    }
    Ok(())
}

/// The origin (`scheme://host[:port]`) of a base URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |index| index + 3);
    match url[after_scheme..].find('/') {
        Some(index) => &url[..after_scheme + index],
        None => url,
    }
}

/// Refuses (403) a form whose `csrf` field is not `token`'s CSRF token.
fn check_csrf(token: &Token, fields: &[(String, String)]) -> Result<(), Answer> {
    if token.accepts_csrf(field(fields, "csrf").unwrap_or_default()) {
        Ok(())
    } else {
        Err(csrf_refused())
    }
}

/// The 403 of a form that fails the cross-site checks.
fn csrf_refused() -> Answer {
    tracing::info!("dashboard form refused: cross-site or without a valid CSRF token");
    page(
        StatusCode::FORBIDDEN,
        pages::message(
            "Refused",
            None,
            "This form did not come from these pages (or it is too old). Nothing was changed. \
             Reload the page and try again.",
        ),
    )
}

/// The answer to a store failure: logged, 500, no detail.
fn store_failure(error: StoreError) -> Answer {
    tracing::error!(%error, "dashboard request failed: store failure");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            "Something went wrong",
            None,
            "The request could not be completed. Nothing was changed; please try again later.",
        ),
    )
}

/// An HTML page.
fn page(status: StatusCode, markup: Markup) -> Answer {
    response::html(status, markup.into_string())
}

/// Adds a `Set-Cookie`.
fn set_cookie(answer: &mut Answer, cookie: &str) {
    answer.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(cookie).expect("cookies are made of header-safe text"),
    );
}

/// Adds the headers of every answer under `/dashboard`: the policy, no caching, no sniffing,
/// no framing (see `http::response::page_headers`).
pub fn with_page_headers(answer: &mut Answer) {
    response::page_headers(answer.headers_mut(), CSP);
}

/// A static file: the script or the style sheet, immutable (their URLs change with them).
fn static_file(name: &str) -> Answer {
    let found = ASSETS.iter().find(|(url, _, _)| {
        url.strip_prefix("/dashboard/static/")
            .and_then(|rest| rest.split('?').next())
            == Some(name)
    });
    let Some((_, content_type, content)) = found else {
        let mut answer = response::not_found();
        with_page_headers(&mut answer);
        return answer;
    };
    let mut answer = Response::new(Full::new(Bytes::from_static(content.as_bytes())));
    with_page_headers(&mut answer);
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    answer
}

/// The URLs of the script and the style sheet, content-hashed (for the pages).
pub(crate) fn asset_urls() -> (&'static str, &'static str) {
    (&ASSETS[0].0, &ASSETS[1].0)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn origins_of_base_urls() {
        assert_eq!(
            origin_of("https://ddns.example.net"),
            "https://ddns.example.net"
        );
        assert_eq!(
            origin_of("https://ddns.example.net:8443/ddns"),
            "https://ddns.example.net:8443"
        );
    }

    #[test]
    fn other_sites_are_refused_and_plain_clients_go_on_to_the_token() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let ok = |pairs| refuse_other_sites(&headers(pairs), Some("https://ddns.example.net"));
        assert!(ok(&[]).is_ok());
        assert!(ok(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(ok(&[("sec-fetch-site", "cross-site")]).is_err());
        // A DDNS host beside the service is same-site: refused too.
        assert!(ok(&[("sec-fetch-site", "same-site")]).is_err());
        assert!(ok(&[("origin", "https://ddns.example.net")]).is_ok());
        assert!(
            ok(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ])
            .is_ok()
        );
        assert!(
            ok(&[
                ("origin", "https://alice.dyn.example.net"),
                ("host", "ddns.example.net")
            ])
            .is_err()
        );
        assert!(ok(&[("origin", "null"), ("host", "ddns.example.net")]).is_err());
    }

    #[test]
    fn names_in_paths_are_validated_and_lower_case() {
        assert_eq!(
            name_in_path("Home.Dyn.Example").as_deref(),
            Some("home.dyn.example")
        );
        assert_eq!(
            name_in_path("home%2Edyn.example").as_deref(),
            Some("home.dyn.example")
        );
        assert_eq!(name_in_path("..%2F..%2Fetc"), None);
        assert_eq!(name_in_path("%FF"), None);
        assert_eq!(name_in_path(""), None);
    }
}
