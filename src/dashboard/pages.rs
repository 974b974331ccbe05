//! The HTML of the account holder's pages, as `maud` templates: checked when the crate
//! compiles, every interpolated value escaped. No inline script or style (the
//! Content-Security-Policy allows only `/dashboard/static/`), no external asset.
//!
//! Without JavaScript everything works but copying: the question mark is a link to the help
//! page, both tabs show one under the other, and the copy buttons stay hidden.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::model::account::ApiKey;
use crate::model::account::User;
use crate::model::audit::AuditRecord;
use crate::model::domain::Domain;
use crate::model::tsig::TsigKeyListing;
use crate::update_help::{COMPATIBLE_ROUTERS, KeyStatus, UpdateHelp};

/// The path of the pages' script.
pub(super) const SCRIPT_PATH: &str = "/dashboard/static/dashboard.js";
/// The path of the pages' style sheet.
pub(super) const STYLE_PATH: &str = "/dashboard/static/dashboard.css";

/// Which entry of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    /// The domains (and their history and help).
    Domains,
    /// The API keys.
    Keys,
    /// The router guide.
    Guide,
    /// None (sign-in, errors).
    None,
}

/// What every page of a signed-in user shows around its content.
#[derive(Debug)]
pub(super) struct Frame<'a> {
    /// The user.
    pub(super) user: &'a User,
    /// The CSRF token for the forms of the page.
    pub(super) csrf: &'a str,
    /// The current navigation entry.
    pub(super) nav: Nav,
}

/// The document around `content`, with the navigation of `frame` when signed in.
pub(super) fn document(title: &str, frame: Option<&Frame<'_>>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · certadns-ddns" }
                link rel="stylesheet" href=(super::asset_urls().1);
                script src=(super::asset_urls().0) defer {}
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "certadns-ddns" }
                    @if let Some(frame) = frame {
                        nav aria-label="Main" {
                            (nav_link("/dashboard", "Domains", frame.nav == Nav::Domains))
                            (nav_link("/dashboard/api-keys", "API keys", frame.nav == Nav::Keys))
                            (nav_link("/dashboard/guide", "Router guide", frame.nav == Nav::Guide))
                        }
                        form.sign-out method="post" action="/dashboard/logout" {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            span.who { (frame.user.username) " · " (frame.user.plan) " plan" }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (content) }
                div.sr-only #announce aria-live="polite" {}
            }
        }
    }
}

/// One navigation link, marked when current.
fn nav_link(href: &str, text: &str, current: bool) -> Markup {
    html! {
        @if current { a href=(href) aria-current="page" { (text) } }
        @else { a href=(href) { (text) } }
    }
}

/// The sign-in form, with an error above it after a failed attempt.
pub(super) fn sign_in(csrf: &str, login: &str, error: Option<&str>) -> Markup {
    document(
        "Sign in",
        None,
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                p { "Your account's username or email, and its password. (API keys are for \
                     updates; they do not sign in here.)" }
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form method="post" action="/dashboard/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="login" { "Username or email" }
                    input #login type="text" name="login" value=(login) required
                        autocomplete="username" autocapitalize="none" spellcheck="false"
                        maxlength="254";
                    label for="password" { "Password" }
                    input #password type="password" name="password" required
                        autocomplete="current-password" maxlength="1024";
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A page that says one thing (an error, a refusal).
pub(super) fn message(title: &str, frame: Option<&Frame<'_>>, text: &str) -> Markup {
    document(
        title,
        frame,
        html! {
            section.card {
                h1 { (title) }
                p { (text) }
                p { a href="/dashboard" { "Back to your domains" } }
            }
        },
    )
}

/// A time as the store writes it (`2026-11-30T01:02:03.456Z`), shown to the second, in UTC.
fn time(stored: &str) -> Markup {
    let shown = stored
        .get(..19)
        .map_or_else(|| stored.to_string(), |text| text.replacen('T', " ", 1));
    html! { time datetime=(stored) { (shown) } }
}

/// When a key was last used, or "never".
fn last_used(at: Option<&str>) -> Markup {
    html! {
        @match at {
            Some(at) => (time(at)),
            None => span.muted { "never" },
        }
    }
}

/// An optional value, or a dash.
fn or_dash(value: Option<&str>) -> Markup {
    html! {
        @match value {
            Some(value) if !value.is_empty() => (value),
            _ => span.muted { "—" },
        }
    }
}

/// The domain list with a help dialog per name.
pub(super) fn domains(frame: &Frame<'_>, domains: &[Domain], helps: &[UpdateHelp]) -> Markup {
    let ttl = frame.user.plan.ttl();
    document(
        "Domains",
        Some(frame),
        html! {
            h1 { "Domains" }
            @if domains.is_empty() {
                p { "You have no domains yet. Your provider adds them for you." }
            } @else {
                div.table-wrap {
                    table.domains {
                        caption.sr-only { "Your domains" }
                        thead { tr {
                            th scope="col" { "Domain" }
                            th scope="col" { "Type" }
                            th scope="col" { "Address" }
                            th scope="col" { "TTL" }
                            th scope="col" { "Last update" }
                            th scope="col" { "Last check" }
                            th scope="col" { "Actions" }
                        } }
                        tbody {
                            @for domain in domains {
                                @let index = helps.iter().position(|help| help.fqdn == domain.fqdn);
                                tr {
                                    th scope="row" { code { (domain.fqdn) } }
                                    td { (domain.record_type.as_str()) }
                                    td { (or_dash(domain.ip.map(|ip| ip.to_string()).as_deref())) }
                                    td { (ttl) " s" }
                                    td { (time(&domain.updated_at)) }
                                    td { @match &domain.last_checked_at {
                                        Some(at) => (time(at)),
                                        None => (or_dash(None)),
                                    } }
                                    td.actions {
                                        a.icon-button href=(domain_path(&domain.fqdn, "help"))
                                            data-help=[index.map(|index| format!("help-{index}"))]
                                            aria-label=(format!("Update help for {}", domain.fqdn))
                                            title="Update help" { "?" }
                                        " "
                                        a href=(domain_path(&domain.fqdn, "history")) { "History" }
                                    }
                                }
                            }
                        }
                    }
                }
                @for (index, help) in helps.iter().enumerate() {
                    (help_dialog(&format!("help-{index}"), help))
                }
            }
        },
    )
}

/// The path of a page of one domain.
pub(super) fn domain_path(fqdn: &str, page: &str) -> String {
    format!("/dashboard/domains/{fqdn}/{page}")
}

/// The Update Help of one domain as a modal dialog (opened by the script).
fn help_dialog(id: &str, help: &UpdateHelp) -> Markup {
    html! {
        dialog.help id=(id) aria-labelledby=(format!("{id}-title")) {
            // The heading, the close button and the tabs stay in view while the panel scrolls.
            div.dialog-top {
                div.dialog-head {
                    h2 id=(format!("{id}-title")) { "Update help: " code { (help.fqdn) } }
                    button.close type="button" data-close aria-label="Close" { "×" }
                }
                (tab_list(id))
            }
            (tab_panels(id, help))
        }
    }
}

/// The Update Help of one domain as a page of its own (the question mark without script).
pub(super) fn help_page(frame: &Frame<'_>, help: &UpdateHelp) -> Markup {
    document(
        &format!("Update help for {}", help.fqdn),
        Some(frame),
        html! {
            p { a href="/dashboard" { "← Domains" } }
            h1 { "Update help: " code { (help.fqdn) } }
            (tab_list("help"))
            (tab_panels("help", help))
        },
    )
}

/// A text to copy: shown in full, with its copy button (shown when the script runs).
fn copyable(text: &str) -> Markup {
    html! {
        div.copyable {
            pre { code { (text) } }
            button.copy type="button" data-copy=(text) aria-label="Copy" title="Copy" hidden {
                span.copy-label { "Copy" }
            }
        }
    }
}

/// The two tabs of the Update Help, cURL / Script and Router (hidden until the script runs:
/// without it both panels show, one under the other).
fn tab_list(id: &str) -> Markup {
    let curl = format!("{id}-curl");
    let router = format!("{id}-router");
    html! {
        div.tabs role="tablist" aria-label="How to update" hidden {
            button role="tab" type="button" id=(format!("{curl}-tab")) aria-controls=(curl)
                aria-selected="true" { "cURL / Script" }
            button role="tab" type="button" id=(format!("{router}-tab")) aria-controls=(router)
                aria-selected="false" tabindex="-1" { "Router" }
        }
    }
}

/// The panels of the two tabs.
fn tab_panels(id: &str, help: &UpdateHelp) -> Markup {
    let curl = format!("{id}-curl");
    let router = format!("{id}-router");
    html! {
        p.subtitle { (help.title) }
        section.tab-panel id=(curl) role="tabpanel" aria-labelledby=(format!("{curl}-tab")) {
            h3.panel-title { "cURL / Script" }
            @match &help.keys {
                KeyStatus::FreePlan => p.note {
                    "Your plan (free) has no API keys: these commands use your account \
                     password. API keys (recommended for routers and scripts) come with the \
                     Plus, Pro and Elite plans."
                },
                KeyStatus::NoKey => p.note {
                    "You have no API key that can update domains yet. "
                    a href="/dashboard/api-keys" { "Generate one on the API Keys page" }
                    " and put it in place of " code { "ak_YOUR_API_KEY" } "."
                },
                KeyStatus::Keys(prefixes) => p.note {
                    "Put one of your API keys (" (prefixes.join(", ")) "…) in place of "
                    code { "ak_YOUR_API_KEY" } ". A key is shown only when it is created; "
                    a href="/dashboard/api-keys" { "manage your keys" } "."
                },
            }
            @for command in &help.commands {
                p.label { (command.label) }
                (copyable(&command.text))
            }
            h4 { "Alternative endpoints" }
            p { "They take the same parameters as " code { "/nic/update" } "." }
            ul.endpoints {
                @for (url, note) in &help.endpoints {
                    li {
                        (copyable(url))
                        @if let Some(note) = note { span.muted { (note) } }
                    }
                }
            }
        }
        section.tab-panel id=(router) role="tabpanel" aria-labelledby=(format!("{router}-tab")) {
            h3.panel-title { "Router" }
            p { "Enter these values in your router's DDNS (dyndns2) settings:" }
            div.table-wrap {
                table.settings {
                    thead { tr { th scope="col" { "Setting" } th scope="col" { "Value" } } }
                    tbody {
                        @for (setting, value) in &help.router_settings {
                            tr { th scope="row" { (setting) } td { (copyable(value)) } }
                        }
                    }
                }
            }
            p { (help.router_note) }
            h4 { "Compatible routers" }
            ul { @for router in COMPATIBLE_ROUTERS { li { (router) } } }
            p { a href=(help.guide_url) { "The full router setup guide" } }
        }
    }
}

/// Where the history page starts and where its links go.
#[derive(Debug)]
pub(super) struct Paging {
    /// Link to newer rows, if any.
    pub(super) newer: Option<String>,
    /// Link to older rows, if any.
    pub(super) older: Option<String>,
}

/// One page of a domain's update history.
pub(super) fn history(
    frame: &Frame<'_>,
    fqdn: &str,
    rows: &[AuditRecord],
    paging: &Paging,
) -> Markup {
    document(
        &format!("History of {fqdn}"),
        Some(frame),
        html! {
            p { a href="/dashboard" { "← Domains" } }
            h1 { "Update history: " code { (fqdn) } }
            @if rows.is_empty() {
                p { "No updates yet." }
            } @else {
                div.table-wrap {
                    table.history {
                        caption.sr-only { "Address changes, newest first" }
                        thead { tr {
                            th scope="col" { "Time (UTC)" }
                            th scope="col" { "Type" }
                            th scope="col" { "Old address" }
                            th scope="col" { "New address" }
                            th scope="col" { "Country" }
                            th scope="col" { "Tags" }
                            th scope="col" { "Source" }
                            th scope="col" { "Source country" }
                            th scope="col" { "Source tags" }
                            th scope="col" { "User agent" }
                            th scope="col" { "Authentication" }
                        } }
                        tbody {
                            @for row in rows {
                                tr {
                                    td { (time(&row.created_at)) }
                                    td { (row.record_type) }
                                    td { (or_dash(row.old_ip.as_deref())) }
                                    td { code { (row.new_ip) } }
                                    td { (or_dash(row.country_code.as_deref())) }
                                    td { (tags(&row.ip_tags)) }
                                    td { (or_dash(row.source_ip.as_deref())) }
                                    td { (or_dash(row.source_country_code.as_deref())) }
                                    td { (tags(&row.source_ip_tags)) }
                                    td.agent { (or_dash(row.user_agent.as_deref())) }
                                    td { (row.auth_method) }
                                }
                            }
                        }
                    }
                }
            }
            nav.paging aria-label="History pages" {
                @if let Some(newer) = &paging.newer { a href=(newer) rel="prev" { "← Newer" } }
                @if let Some(older) = &paging.older { a href=(older) rel="next" { "Older →" } }
            }
        },
    )
}

/// Tags as small labels, or a dash.
fn tags(tags: &[String]) -> Markup {
    html! {
        @if tags.is_empty() { span.muted { "—" } }
        @for tag in tags { span.tag { (tag) } " " }
    }
}

/// What the API keys page says above the list.
#[derive(Debug)]
pub(super) enum KeysNotice<'a> {
    /// Nothing.
    None,
    /// A key was just created: its secret, shown this once.
    Created(&'a str),
    /// A key was revoked: its prefix.
    Revoked(&'a str),
    /// Something was refused: why.
    Refused(&'a str),
}

/// The API keys page.
pub(super) fn api_keys(
    frame: &Frame<'_>,
    keys: &[ApiKey],
    tsig_keys: &[TsigKeyListing],
    notice: &KeysNotice<'_>,
) -> Markup {
    let paid = frame.user.plan.allows_api_keys();
    document(
        "API keys",
        Some(frame),
        html! {
            h1 { "API keys" }
            @match notice {
                KeysNotice::Created(secret) => section.card.created role="status" {
                    h2 { "Your new API key" }
                    p { "Copy it now: it is shown only this once. Only its hash is stored, so \
                         nobody can show it to you again." }
                    (copyable(secret))
                },
                KeysNotice::Revoked(prefix) => p.ok role="status" {
                    "Key " code { (prefix) } " revoked: requests with it are refused from now on."
                },
                KeysNotice::Refused(reason) => p.error role="alert" { (reason) },
                KeysNotice::None => {},
            }
            @if paid {
                p { "A key updates your domains from routers and scripts (Bearer token, or in \
                     place of the password) without your account password. Revoke a key you no \
                     longer use, or one that may have leaked." }
                form.inline method="post" action="/dashboard/api-keys" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    input type="hidden" name="scope" value="domains:update";
                    button.primary type="submit" { "Create a key (scope domains:update)" }
                }
            } @else {
                p.note { "API keys come with the Plus, Pro and Elite plans. On the free plan, \
                          routers and scripts update with your username and account password." }
            }
            @if !keys.is_empty() {
                div.table-wrap {
                    table.keys {
                        caption.sr-only { "Your API keys, newest first" }
                        thead { tr {
                            th scope="col" { "Prefix" }
                            th scope="col" { "Scopes" }
                            th scope="col" { "Created" }
                            th scope="col" { "Last used" }
                            th scope="col" { "Active" }
                            th scope="col" { "Actions" }
                        } }
                        tbody {
                            @for key in keys {
                                tr {
                                    th scope="row" { code { (key.prefix) "…" } }
                                    td { (key.scopes.join(", ")) }
                                    td { (time(&key.created_at)) }
                                    td { (last_used(key.last_used_at.as_deref())) }
                                    td { @if key.is_active { "Yes" } @else { "Revoked" } }
                                    td.actions {
                                        @if key.is_active {
                                            form.inline method="post"
                                                action=(format!("/dashboard/api-keys/{}/revoke", key.id)) {
                                                input type="hidden" name="csrf" value=(frame.csrf);
                                                button.danger type="submit"
                                                    aria-label=(format!("Revoke {}", key.prefix)) { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if paid || !tsig_keys.is_empty() {
                h2 { "TSIG keys (RFC 2136)" }
                p { "A TSIG key signs RFC 2136 updates of your hosts' addresses and ACME values: \
                     nsupdate, ddclient's nsupdate mode, lego, certbot, cert-manager. Your \
                     provider creates them and hands you the secret once; ask them to revoke one \
                     that may have leaked." }
            }
            @if !tsig_keys.is_empty() {
                div.table-wrap {
                    table.keys {
                        caption.sr-only { "Your TSIG keys" }
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Algorithm" }
                            th scope="col" { "Created" }
                            th scope="col" { "Last used" }
                            th scope="col" { "Active" }
                        } }
                        tbody {
                            @for key in tsig_keys {
                                tr {
                                    th scope="row" { code { (key.name) } }
                                    td { (key.algorithm) }
                                    td { (time(&key.created_at)) }
                                    td { (last_used(key.last_used_at.as_deref())) }
                                    td { @if key.active { "Yes" } @else { "Revoked" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The shipped client configurations, for the guide.
const CLIENT_EXAMPLES: &[(&str, &str)] = &[
    ("ddclient", include_str!("../../examples/ddclient.conf")),
    ("inadyn", include_str!("../../examples/inadyn.conf")),
    (
        "OpenWRT (ddns-scripts)",
        include_str!("../../examples/openwrt-ddns.conf"),
    ),
    (
        "pfSense / OPNsense",
        include_str!("../../examples/pfsense.md"),
    ),
];

/// Who reads the router guide, and where the service is: what the shipped examples' sample
/// values (`ddns.example.net`, `alice`, `home.dyn.example.net`, https) become.
pub(super) struct Reader<'a> {
    /// The service's host (and port) as clients reach it.
    pub server: &'a str,
    /// Whether clients reach it over https (`public-url`); else the examples say http.
    pub https: bool,
    /// The user's login.
    pub login: &'a str,
    /// One of the user's names (or a placeholder).
    pub host: &'a str,
}

impl Reader<'_> {
    /// `example` with the reader's values in its settings. Comment lines stay as shipped (they
    /// explain the sample values); over plain http, the TLS switches of each client are off.
    fn personal(&self, example: &str) -> String {
        let mut out = String::with_capacity(example.len());
        for line in example.split_inclusive('\n') {
            if line.trim_start().starts_with('#') {
                out.push_str(line);
                continue;
            }
            let mut line = line
                .replace("ddns.example.net", self.server)
                .replace("home.dyn.example.net", self.host)
                .replace("alice", self.login);
            if !self.https {
                for (secure, plain) in [
                    ("https://", "http://"),
                    ("ssl=yes", "ssl=no"),
                    ("ssl = true", "ssl = false"),
                    ("checkip-ssl = true", "checkip-ssl = false"),
                    ("option use_https '1'", "option use_https '0'"),
                ] {
                    line = line.replace(secure, plain);
                }
            }
            out.push_str(&line);
        }
        out
    }
}

/// Markdown shipped with the service (examples/pfsense.md), rendered: tables as tables. Raw
/// HTML in it is shown as text, never passed through.
fn markdown(text: &str) -> Markup {
    use pulldown_cmark::{Event, Options, Parser};
    let events = Parser::new_ext(text, Options::ENABLE_TABLES).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    PreEscaped(html)
}

/// The router setup guide: the settings, then a working configuration per client, with this
/// service's name, the user's login and one of their names in place of the examples'.
pub(super) fn guide(frame: &Frame<'_>, reader: &Reader<'_>, settings: &UpdateHelp) -> Markup {
    document(
        "Router setup guide",
        Some(frame),
        html! {
            h1 { "Router setup guide" }
            p { "Most routers speak the dyndns2 protocol. Choose the provider “dyndns2” or \
                 “Custom” and enter:" }
            div.table-wrap {
                table.settings {
                    tbody {
                        @for (setting, value) in &settings.router_settings {
                            tr { th scope="row" { (setting) } td { code { (value) } } }
                        }
                    }
                }
            }
            p { (settings.router_note) }
            p { "The answer is one line per host: " code { "good ADDRESS" } " (changed), "
                code { "nochg ADDRESS" } " (already so), " code { "badauth" } " (wrong login, \
                password or key), " code { "nohost" } " (not one of your domains), "
                code { "abuse" } " (too many updates: slow down), " code { "dnserr" }
                " (a fault on our side: try again later)." }
            @for (client, example) in CLIENT_EXAMPLES {
                h2 { (client) }
                @if example.starts_with("# pfSense") {
                    div.example-doc {
                        (markdown(
                            reader
                                .personal(example)
                                .split_once('\n')
                                .map_or("", |(_, rest)| rest)
                        ))
                    }
                } @else {
                    pre.example { code { (reader.personal(example)) } }
                }
            }
        },
    )
}

/// The 404 page.
pub(super) fn not_found(frame: Option<&Frame<'_>>) -> Markup {
    message(
        "Not found",
        frame,
        "There is no such page, or it is not yours.",
    )
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{Plan, RecordType};
    use crate::update_help::test::subject;

    fn alice(plan: Plan) -> User {
        User {
            id: 1,
            username: "alice".into(),
            email: "alice@example.com".into(),
            password_hash: "$phc".into(),
            plan,
            is_active: true,
            created_at: "t".into(),
        }
    }

    #[test]
    fn values_are_escaped_and_nothing_runs_inline() {
        let user = alice(Plan::Plus);
        let frame = Frame {
            user: &user,
            csrf: "tok\"en",
            nav: Nav::Domains,
        };
        let mut help_subject = subject(Plan::Plus, &[], &[RecordType::A]);
        help_subject.fqdn = "<script>x</script>.dyn.example".into();
        let help = UpdateHelp::new(&help_subject, "http://127.0.0.1:1");
        let page = help_page(&frame, &help).into_string();
        assert!(!page.contains("<script>x"), "{page}");
        assert!(page.contains("&lt;script&gt;x"));
        assert!(page.contains("value=\"tok&quot;en\""));
        // The only script element is the static file; no style attribute or element.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("style=") && !page.contains("<style"));
        let handlers = page
            .split('<')
            .filter_map(|tag| tag.split('>').next())
            .flat_map(str::split_whitespace)
            .filter(|word| word.starts_with("on") && word.contains('='))
            .count();
        assert_eq!(handlers, 0, "no inline handlers");
    }

    #[test]
    fn the_help_offers_every_command_and_endpoint_to_copy() {
        let user = alice(Plan::Free);
        let frame = Frame {
            user: &user,
            csrf: "t",
            nav: Nav::Domains,
        };
        let help = UpdateHelp::new(
            &subject(Plan::Free, &[], &[RecordType::A]),
            "https://ddns.example.net",
        );
        let page = help_page(&frame, &help).into_string();
        for command in &help.commands {
            let escaped = maud::html! { (command.text) }.into_string();
            assert!(
                page.contains(&format!("data-copy=\"{escaped}\"")),
                "{escaped}"
            );
        }
        for (url, _) in &help.endpoints {
            assert!(page.contains(&format!("data-copy=\"{url}\"")));
        }
        assert!(page.contains("Plus, Pro and Elite"));
        assert!(page.contains("Netgear"));
    }
}
