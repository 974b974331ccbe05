//! The account holder's pages over HTTP, against the real binary: sign-in as Basic auth
//! checks it, sessions and their end, CSRF and cross-site refusals, other users' data out of
//! reach, API keys, paged history, hostile input. The same flows in a real browser are in
//! `dashboard_browser.rs`.

use std::collections::BTreeMap;

use crate::common::{Daemon, HttpResponse, PASSWORD, TestEnv};

/// A client that keeps cookies, as a browser does for one origin.
struct Browser<'a> {
    daemon: &'a Daemon,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(daemon: &'a Daemon) -> Self {
        Self {
            daemon,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &HttpResponse) {
        for (name, value) in &response.headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap();
            let (cookie, content) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(cookie);
            } else {
                self.cookies.insert(cookie.to_string(), content.to_string());
            }
        }
    }

    fn get(&mut self, target: &str) -> HttpResponse {
        let cookies = self.cookie_header();
        let response = self.daemon.get(target, &[("Cookie", &cookies)]);
        self.keep_cookies(&response);
        response
    }

    fn post(&mut self, target: &str, fields: &[(&str, &str)]) -> HttpResponse {
        self.post_with(target, fields, &[])
    }

    fn post_with(
        &mut self,
        target: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let cookies = self.cookie_header();
        let mut all = vec![("Cookie", cookies.as_str())];
        all.extend_from_slice(headers);
        let response = self.daemon.post_form(target, &all, &body);
        self.keep_cookies(&response);
        response
    }

    /// Signs in with `login` and `password` through the form; the answer to the POST.
    fn sign_in(&mut self, login: &str, password: &str) -> HttpResponse {
        let form = self.get("/dashboard/login");
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = csrf_of(&form.body);
        self.post(
            "/dashboard/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        )
    }

    /// The CSRF token of the forms on `path`.
    fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path);
        assert_eq!(page.status, 200, "{page:?}");
        csrf_of(&page.body)
    }
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_string()
}

/// The text of a page without its tags.
fn text_of(page: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The common fixture (`TestEnv::seed`) served with the default config.
fn seeded() -> (TestEnv, Daemon) {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    (env, daemon)
}

fn count(env: &TestEnv, sql: &str) -> i64 {
    env.db().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn signed_in_users_see_their_own_domains_help_and_history_and_nothing_else() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    // An update through the endpoints, for the history.
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=198.51.100.7",
            &[
                ("Authorization", &format!("Bearer {}", seed.alice_key)),
                ("User-Agent", "test-router/1.0"),
            ],
        )
        .assert(200, "good 198.51.100.7");

    let mut alice = Browser::new(&daemon);
    assert_eq!(
        alice.get("/dashboard").header("location"),
        Some("/dashboard/login")
    );
    // The email signs in too, in any case.
    let signed_in = alice.sign_in("ALICE@example.com", PASSWORD);
    assert_eq!(
        (signed_in.status, signed_in.header("location")),
        (303, Some("/dashboard"))
    );
    let domains = alice.get("/dashboard");
    assert_eq!(domains.status, 200);
    let text = text_of(&domains.body);
    assert!(
        text.contains("home.dyn.example A 198.51.100.7 60 s"),
        "{text}"
    );
    assert!(text.contains("v6.dyn.example AAAA"), "{text}");
    assert!(!text.contains("bob.dyn.example"), "{text}");
    // The help of each name is in the page (the dialog) and on its own page, with the
    // Bearer command (alice holds a key) and the URL she reached the service at.
    let base = format!("http://{}", daemon.addr);
    let bearer = format!(
        "curl -H &quot;Authorization: Bearer ak_YOUR_API_KEY&quot; &quot;{base}/nic/update?hostname=home.dyn.example&amp;myip=203.0.113.7&quot;"
    );
    assert!(domains.body.contains(&bearer), "{}", domains.body);
    let help = alice.get("/dashboard/domains/home.dyn.example/help");
    assert_eq!(help.status, 200);
    assert!(help.body.contains(&bearer));
    assert!(
        help.body
            .contains(&format!("data-copy=\"{base}/domains/v2/update\""))
    );

    let history = alice.get("/dashboard/domains/home.dyn.example/history");
    assert_eq!(history.status, 200);
    let text = text_of(&history.body);
    assert!(
        text.contains(
            "A — 198.51.100.7 — documentation 127.0.0.1 — loopback test-router/1.0 bearer"
        ),
        "{text}"
    );
    // Another user's name, one that does not exist, and nonsense all answer the same 404.
    for path in [
        "/dashboard/domains/bob.dyn.example/history",
        "/dashboard/domains/bob.dyn.example/help",
        "/dashboard/domains/nothing.dyn.example/history",
        "/dashboard/domains/..%2F..%2Fetc%2Fpasswd/history",
        "/dashboard/domains/%00/help",
        "/dashboard/domains/home.dyn.example/history/extra",
        "/dashboard/nothing",
    ] {
        let answer = alice.get(path);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(!answer.body.contains("bob.dyn.example"), "{path}");
    }
    // Every page carries the policy; the static files are immutable.
    let policy = domains.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    assert_eq!(domains.header("cache-control"), Some("no-store"));
    assert_eq!(domains.header("x-frame-options"), Some("DENY"));
    let script_url = domains
        .body
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let script = alice.get(&script_url);
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .header("cache-control")
            .unwrap()
            .contains("immutable")
    );
    assert!(script.body.contains("showModal"));
    assert_eq!(alice.get("/dashboard/static/../../etc/passwd").status, 404);
}

#[test]
fn cookies_are_http_only_strict_and_secure_behind_https() {
    let env = TestEnv::new();
    env.seed();
    for (config, secure) in [
        ("", false),
        ("updates.public-url = \"https://ddns.example.net/\"", true),
    ] {
        let daemon = env.spawn(config);
        let mut browser = Browser::new(&daemon);
        let form = browser.get("/dashboard/login");
        let sign_in_cookie = form.header("set-cookie").unwrap().to_string();
        let answer = browser.sign_in("alice", PASSWORD);
        let session = answer
            .headers
            .iter()
            .find(|(name, value)| name == "set-cookie" && value.contains("-session="))
            .map(|(_, value)| value.clone())
            .unwrap();
        for cookie in [&sign_in_cookie, &session] {
            assert!(cookie.contains("; HttpOnly; SameSite=Strict"), "{cookie}");
            assert!(cookie.contains("; Path=/;"), "{cookie}");
            assert_eq!(cookie.ends_with("; Secure"), secure, "{cookie}");
            assert_eq!(cookie.starts_with("__Host-"), secure, "{cookie}");
        }
        assert!(session.contains("Max-Age=43200"), "{session}");
        // The store keeps the token's hash only.
        let token = session
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1;
        assert_eq!(
            count(
                &env,
                &format!(
                    "SELECT count(*) FROM dashboard_sessions WHERE token_hash LIKE '%{token}%'"
                )
            ),
            0
        );
        // The commands shown use public-url when there is one.
        if secure {
            assert!(
                browser
                    .get("/dashboard")
                    .body
                    .contains("https://ddns.example.net/nic/update?hostname=home.dyn.example")
            );
        }
    }
}

#[test]
fn forged_and_cross_site_forms_are_refused_and_change_nothing() {
    let (env, daemon) = seeded();
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let csrf = alice.csrf("/dashboard/api-keys");
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    let bobs_csrf = bob.csrf("/dashboard");
    let keys_before = count(&env, "SELECT count(*) FROM api_keys");

    let create = |browser: &mut Browser<'_>, fields: &[(&str, &str)], headers: &[(&str, &str)]| {
        browser
            .post_with("/dashboard/api-keys", fields, headers)
            .status
    };
    assert_eq!(create(&mut alice, &[], &[]), 403, "no token");
    assert_eq!(
        create(&mut alice, &[("csrf", "x")], &[]),
        403,
        "a wrong token"
    );
    assert_eq!(
        create(&mut alice, &[("csrf", &bobs_csrf)], &[]),
        403,
        "bob's token"
    );
    for headers in [
        [("Origin", "http://evil.example")],
        [("Origin", "null")],
        [("Sec-Fetch-Site", "cross-site")],
        // A DDNS host under the same registrable domain is same-site, and not trusted.
        [("Sec-Fetch-Site", "same-site")],
    ] {
        assert_eq!(
            create(&mut alice, &[("csrf", &csrf)], &headers),
            403,
            "{headers:?}"
        );
    }
    // Without the session cookie (what a cross-site POST carries under SameSite=Strict).
    let mut stranger = Browser::new(&daemon);
    assert_eq!(create(&mut stranger, &[("csrf", &csrf)], &[]), 403);
    // Sign-out is a state change too; sign-in needs its form's own token.
    assert_eq!(alice.post("/dashboard/logout", &[]).status, 403);
    assert_eq!(
        alice.get("/dashboard").status,
        200,
        "a forged sign-out signs nobody out"
    );
    let mut fresh = Browser::new(&daemon);
    let forged = fresh.post(
        "/dashboard/login",
        &[("csrf", &csrf), ("login", "alice"), ("password", PASSWORD)],
    );
    assert_eq!(forged.status, 403);
    assert!(forged.header("location").is_none());
    assert_eq!(count(&env, "SELECT count(*) FROM api_keys"), keys_before);

    // The genuine form works, from the same origin as a browser says it.
    let origin = format!("http://{}", daemon.addr);
    let created = alice.post_with(
        "/dashboard/api-keys",
        &[("csrf", &csrf), ("scope", "domains:update")],
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(
        count(&env, "SELECT count(*) FROM api_keys"),
        keys_before + 1
    );
}

#[test]
fn sign_in_is_checked_as_basic_auth_is_and_shares_its_throttle() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon =
        env.spawn("limits.auth-failure-limit = 3\nlimits.auth-failure-cooldown-secs = 600");
    let mut browser = Browser::new(&daemon);
    // An API key is not a password here.
    let with_key = browser.sign_in("alice", &seed.alice_key);
    assert_eq!(with_key.status, 401);
    assert!(text_of(&with_key.body).contains("Incorrect username, email or password."));
    assert!(
        with_key.body.contains("value=\"alice\""),
        "the login is kept in the form"
    );
    let unknown = browser.sign_in("nobody", PASSWORD);
    assert_eq!(unknown.status, 401);
    assert_eq!(browser.sign_in("alice", "wrong").status, 401);
    // Three failures from this client: the right password is refused now, on the pages and
    // on the update endpoints alike. The pages say why, and when to come back (issue 28, item
    // 5); an unknown login is told the same; the endpoints keep dyndns2's `badauth`.
    let locked = browser.sign_in("alice", PASSWORD);
    assert_eq!(locked.status, 429);
    let said = text_of(&locked.body);
    assert!(
        said.contains("Too many sign-in attempts. Please try again in 10 minutes."),
        "{said}"
    );
    assert!(!said.contains("Incorrect"), "{said}");
    let unknown_locked = browser.sign_in("nobody", PASSWORD);
    assert_eq!(unknown_locked.status, 429);
    assert!(text_of(&unknown_locked.body).contains("Too many sign-in attempts."));
    assert_eq!(
        daemon
            .update_basic("bob", PASSWORD, "hostname=bob.dyn.example&myip=192.0.2.5")
            .status,
        401
    );
    assert_eq!(count(&env, "SELECT count(*) FROM dashboard_sessions"), 0);
    // Oversized input is refused before any lookup, and the body limit holds.
    let long = "a".repeat(100_000);
    let mut other = Browser::new(&daemon);
    let form = other.get("/dashboard/login");
    let csrf = csrf_of(&form.body);
    let huge = other.post(
        "/dashboard/login",
        &[("csrf", &csrf), ("login", &long), ("password", "x")],
    );
    assert_eq!(huge.status, 413);
    // The key still updates: refusals on the pages leave the endpoints as they were.
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.44")
        .assert(200, "good 192.0.2.44");
    // Empty fields are refused before any check.
    assert_eq!(other.sign_in("alice", "").status, 400);
    assert_eq!(other.sign_in("", PASSWORD).status, 400);
    // No password and no login reached the log.
    let log = daemon.log();
    assert!(!log.contains(PASSWORD) && !log.contains("nobody"), "{log}");
    assert!(log.contains("sign-in refused"));
}

#[test]
fn disabling_a_user_or_a_new_password_ends_their_sessions_at_once() {
    let (env, daemon) = seeded();
    let mut alice = Browser::new(&daemon);
    let mut second = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    second.sign_in("alice@example.com", PASSWORD);
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    assert_eq!(alice.get("/dashboard").status, 200);
    env.cli_ok(&["user", "disable", "alice"]);
    assert_eq!(alice.get("/dashboard").status, 303);
    assert_eq!(second.get("/dashboard/api-keys").status, 303);
    assert_eq!(
        bob.get("/dashboard").status,
        200,
        "other users stay signed in"
    );
    // Enabled again, the old cookies stay dead; a disabled user cannot sign in.
    env.cli_ok(&["user", "enable", "alice"]);
    assert_eq!(alice.get("/dashboard").status, 303);
    alice.sign_in("alice", PASSWORD);
    assert_eq!(alice.get("/dashboard").status, 200);
    env.cli_ok_with_stdin(
        &["user", "password", "alice", "--password-stdin"],
        "a new password",
    );
    assert_eq!(alice.get("/dashboard").status, 303);
    assert_eq!(alice.sign_in("alice", PASSWORD).status, 401);
    assert_eq!(alice.sign_in("alice", "a new password").status, 303);
    env.cli_ok(&["user", "disable", "bob"]);
    assert_eq!(bob.sign_in("bob", PASSWORD).status, 401);
}

#[test]
fn signing_out_ends_the_session_for_good() {
    let (env, daemon) = seeded();
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let stolen = alice.cookies.clone();
    let csrf = alice.csrf("/dashboard");
    let out = alice.post("/dashboard/logout", &[("csrf", &csrf)]);
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/dashboard/login"))
    );
    assert!(alice.cookies.is_empty(), "{:?}", alice.cookies);
    // A copy of the cookie taken before is worth nothing now.
    let mut replay = Browser::new(&daemon);
    replay.cookies = stolen;
    assert_eq!(replay.get("/dashboard").status, 303);
    assert_eq!(count(&env, "SELECT count(*) FROM dashboard_sessions"), 0);
}

#[test]
fn keys_are_created_shown_once_used_and_revoked_by_their_owner_only() {
    let (env, daemon) = seeded();
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let csrf = alice.csrf("/dashboard/api-keys");
    let created = alice.post("/dashboard/api-keys", &[("csrf", &csrf)]);
    assert_eq!(created.status, 200);
    let secret = created
        .body
        .split("data-copy=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    assert!(secret.starts_with("ak_") && secret.len() > 40, "{secret}");
    assert!(text_of(&created.body).contains("shown only this once"));
    // Not shown again, and stored only as a hash.
    assert!(!alice.get("/dashboard/api-keys").body.contains(&secret));
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) FROM api_keys WHERE key_hash = '{secret}' OR prefix = '{secret}'"
            )
        ),
        0
    );
    daemon
        .update_bearer(&secret, "hostname=home.dyn.example&myip=192.0.2.60")
        .assert(200, "good 192.0.2.60");
    let page = alice.get("/dashboard/api-keys");
    let prefix = &secret[..11];
    let text = text_of(&page.body);
    assert!(
        text.contains(&format!("{prefix}… domains:update")),
        "{text}"
    );
    let id: i64 = env
        .db()
        .query_row(
            "SELECT id FROM api_keys WHERE prefix = ?1",
            [prefix],
            |row| row.get(0),
        )
        .unwrap();
    // Bob cannot revoke it, nor learn that it exists.
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    let bobs_csrf = bob.csrf("/dashboard");
    let path = format!("/dashboard/api-keys/{id}/revoke");
    assert_eq!(bob.post(&path, &[("csrf", &bobs_csrf)]).status, 404);
    daemon
        .update_bearer(&secret, "hostname=home.dyn.example&myip=192.0.2.61")
        .assert(200, "good 192.0.2.61");
    let revoked = alice.post(&path, &[("csrf", &csrf)]);
    assert_eq!(revoked.status, 200);
    assert!(text_of(&revoked.body).contains(&format!("Key {prefix} revoked")));
    daemon
        .update_bearer(&secret, "hostname=home.dyn.example&myip=192.0.2.62")
        .assert(401, "badauth");
    assert_eq!(
        alice
            .post("/dashboard/api-keys/nonsense/revoke", &[("csrf", &csrf)])
            .status,
        404
    );
    // Only the scope the pages offer.
    let odd = alice.post(
        "/dashboard/api-keys",
        &[("csrf", &csrf), ("scope", "admin:all")],
    );
    assert_eq!(odd.status, 400);
}

#[test]
fn free_users_are_told_why_they_have_no_keys_and_cannot_make_one() {
    let (env, daemon) = seeded();
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    let page = bob.get("/dashboard/api-keys");
    let text = text_of(&page.body);
    assert!(
        text.contains("API keys come with the Plus, Pro and Elite plans"),
        "{text}"
    );
    assert!(
        !page.body.contains("action=\"/dashboard/api-keys\""),
        "no create form"
    );
    let help = text_of(&bob.get("/dashboard").body);
    assert!(help.contains("Your plan (free) has no API keys"), "{help}");
    assert!(!help.contains("Authorization: Bearer"));
    let csrf = csrf_of(&page.body);
    let refused = bob.post("/dashboard/api-keys", &[("csrf", &csrf)]);
    assert_eq!(refused.status, 403);
    assert!(text_of(&refused.body).contains("API keys need the Plus, Pro or Elite plan"));
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM api_keys WHERE user_id = (SELECT id FROM users WHERE username = 'bob')"
        ),
        0
    );
}

#[test]
fn the_history_is_paged_newest_first() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("dashboard.history-page-size = 2");
    for n in 1..=5 {
        daemon
            .update_bearer(
                &seed.alice_key,
                &format!("hostname=home.dyn.example&myip=192.0.2.{n}"),
            )
            .assert(200, &format!("good 192.0.2.{n}"));
    }
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let addresses = |page: &HttpResponse| -> Vec<String> {
        page.body
            .split("<td><code>")
            .skip(1)
            .map(|rest| rest.split('<').next().unwrap().to_string())
            .collect()
    };
    let link = |page: &HttpResponse, rel: &str| -> Option<String> {
        let marker = format!("rel=\"{rel}\"");
        let before = page.body.split(&marker).next()?;
        if before.len() == page.body.len() {
            return None;
        }
        let href = before.rsplit("href=\"").next()?;
        Some(href.split('"').next()?.replace("&amp;", "&"))
    };
    let first = alice.get("/dashboard/domains/home.dyn.example/history");
    assert_eq!(addresses(&first), ["192.0.2.5", "192.0.2.4"]);
    assert_eq!(link(&first, "prev"), None);
    let second = alice.get(&link(&first, "next").unwrap());
    assert_eq!(addresses(&second), ["192.0.2.3", "192.0.2.2"]);
    let third = alice.get(&link(&second, "next").unwrap());
    assert_eq!(addresses(&third), ["192.0.2.1"]);
    assert_eq!(link(&third, "next"), None);
    let back = alice.get(&link(&third, "prev").unwrap());
    assert_eq!(addresses(&back), ["192.0.2.3", "192.0.2.2"]);
    let back = alice.get(&link(&back, "prev").unwrap());
    assert_eq!(addresses(&back), ["192.0.2.5", "192.0.2.4"]);
    assert_eq!(link(&back, "prev"), None);
    // Nonsense paging parameters show the newest page.
    let odd = alice.get("/dashboard/domains/home.dyn.example/history?before=x&after=%00");
    assert_eq!(addresses(&odd), ["192.0.2.5", "192.0.2.4"]);
}

#[test]
fn hostile_requests_get_clear_answers_and_the_endpoints_stay_as_they_were() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    for cookie in [
        "certadns-session=",
        "certadns-session=x",
        "certadns-session=../../../../etc/passwd",
        "certadns-session=\"\"; certadns-session=%00",
        &format!("certadns-session={}", "A".repeat(43)),
        &format!("certadns-session={}", "A".repeat(5000)),
    ] {
        let answer = daemon.get("/dashboard", &[("Cookie", cookie)]);
        // Two of one name are refused whatever they hold (see the test below).
        let expected = if cookie.matches("certadns-session=").count() > 1 {
            400
        } else {
            303
        };
        assert_eq!(answer.status, expected, "{cookie}: {answer:?}");
    }
    assert_eq!(
        daemon
            .request("PUT", "/dashboard/api-keys", &[], None)
            .status,
        405
    );
    assert_eq!(
        daemon.request("DELETE", "/dashboard", &[], None).status,
        405
    );
    assert_eq!(daemon.get("/dashboard/api-keys/1/revoke", &[]).status, 405);
    // Many sign-in forms from many clients cost no store write.
    for _ in 0..200 {
        assert_eq!(daemon.get("/dashboard/login", &[]).status, 200);
    }
    assert_eq!(count(&env, "SELECT count(*) FROM dashboard_sessions"), 0);
    // The update endpoints answer as before.
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.80")
        .assert(200, "good 192.0.2.80");
    daemon.get("/dashboardx", &[]).assert(404, "not found");

    // Turned off, the pages are not there at all.
    drop(daemon);
    let off = env.spawn("dashboard.enabled = false");
    off.get("/dashboard/login", &[]).assert(404, "not found");
    off.get("/dashboard/static/dashboard.js", &[])
        .assert(404, "not found");
    off.update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.81")
        .assert(200, "good 192.0.2.81");
}

/// Issue 28, item 11: over http a neighbouring host can plant a cookie for this one
/// (`Domain=example.net`); the browser then sends both. Neither is taken.
#[test]
fn two_session_cookies_are_refused_rather_than_the_first_taken() {
    let (_env, daemon) = seeded();
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    let session = |browser: &Browser<'_>| browser.cookies["certadns-session"].clone();
    let (alices, bobs) = (session(&alice), session(&bob));
    assert!(alice.get("/dashboard").body.contains("home.dyn.example"));
    // Bob's session planted before alice's, as a parent-domain cookie is sent.
    for planted in [
        format!("certadns-session={bobs}; certadns-session={alices}"),
        format!("certadns-session={alices}; certadns-session={bobs}"),
    ] {
        let answer = daemon.get("/dashboard", &[("Cookie", &planted)]);
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(
            answer.body.contains("Two session cookies"),
            "{}",
            answer.body
        );
        assert!(
            !answer.body.contains("bob.dyn.example") && !answer.body.contains("home.dyn.example"),
            "nobody's pages: {}",
            answer.body
        );
        assert!(
            answer
                .headers
                .iter()
                .any(|(name, value)| name == "set-cookie"
                    && value.starts_with("certadns-session=;")
                    && value.contains("Max-Age=0")),
            "{answer:?}"
        );
    }
    // In two Cookie headers too, and for the sign-in form's cookie.
    let answer = daemon.get(
        "/dashboard",
        &[
            ("Cookie", &format!("certadns-session={bobs}")),
            ("Cookie", &format!("certadns-session={alices}")),
        ],
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    let form = Browser::new(&daemon).get("/dashboard/login");
    let csrf = csrf_of(&form.body);
    let own = form
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let other = Browser::new(&daemon).get("/dashboard/login");
    let theirs = other
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("login", "alice"),
            ("password", PASSWORD),
        ])
        .finish();
    let answer = daemon.post_form(
        "/dashboard/login",
        &[("Cookie", &format!("{theirs}; {own}"))],
        &body,
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    // One cookie each: both still signed in.
    assert!(alice.get("/dashboard").body.contains("home.dyn.example"));
    assert!(bob.get("/dashboard").body.contains("bob.dyn.example"));
}

/// Issue 28, item 7: create-and-revoke cycles cannot grow an account's key rows (each loaded
/// on every page view) without bound.
#[test]
fn key_rows_stay_bounded_and_creation_is_paced() {
    let env = TestEnv::new();
    env.seed();
    // Rows as years of cycles leave them: 60 revoked yesterday, 5 revoked 100 days ago.
    let db = rusqlite::Connection::open(&env.db).unwrap();
    for (index, revoked) in (0..65).map(|i| (i, if i < 60 { "-1 day" } else { "-100 days" })) {
        db.execute(
            "INSERT INTO api_keys (user_id, prefix, key_hash, scopes, is_active, created_at,
                                   revoked_at)
             SELECT id, 'ak_old', ?1, '[\"domains:update\"]', 0, '2025-01-01T00:00:00.000Z',
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)
             FROM users WHERE username = 'alice'",
            rusqlite::params![format!("{index:064x}"), revoked],
        )
        .unwrap();
    }
    drop(db);
    let alices_keys = |env: &TestEnv| {
        count(
            env,
            "SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE u.username = 'alice'",
        )
    };
    assert_eq!(alices_keys(&env), 66);
    // The prune at start deletes the keys past their retention (90 days).
    let daemon = env.spawn("");
    daemon.wait_for_log("revoked API keys past their retention deleted");
    assert!(daemon.log().contains("pruned=5"), "{}", daemon.log());
    assert_eq!(alices_keys(&env), 61);
    // A new key trims the oldest revoked ones: 50 rows at most.
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let csrf = alice.csrf("/dashboard/api-keys");
    // Nine here: the seed's key, made a moment ago, counts towards the hour's ten.
    for _ in 0..9 {
        let created = alice.post("/dashboard/api-keys", &[("csrf", &csrf)]);
        assert_eq!(created.status, 200, "{}", text_of(&created.body));
        assert!(alices_keys(&env) <= 50);
    }
    assert_eq!(alices_keys(&env), 50);
    // The eleventh in an hour is refused, saying why.
    let refused = alice.post("/dashboard/api-keys", &[("csrf", &csrf)]);
    assert_eq!(refused.status, 429);
    assert!(
        text_of(&refused.body).contains("you created 10 keys in the last hour"),
        "{}",
        text_of(&refused.body)
    );
    assert_eq!(alices_keys(&env), 50);
    // The page lists what is left: bounded.
    let page = alice.get("/dashboard/api-keys");
    assert!(
        page.body.matches("ak_").count() <= 60,
        "{}",
        page.body.len()
    );
}

/// Issue 29, item 8: the router guide speaks to the signed-in user: their login and one of
/// their names, the service's address and scheme, and the pfSense settings as a table.
#[test]
fn the_router_guide_shows_the_readers_own_settings() {
    let env = TestEnv::new();
    env.seed();
    for (config, https) in [
        ("", false),
        ("updates.public-url = \"https://ddns.example.net/\"", true),
    ] {
        let daemon = env.spawn(config);
        let mut bob = Browser::new(&daemon);
        bob.sign_in("bob", PASSWORD);
        let page = bob.get("/dashboard/guide");
        assert_eq!(page.status, 200);
        let body = &page.body;
        for shown in [
            "login=bob",
            "username = bob",
            "option username &#39;bob&#39;",
            "<code>bob</code>",
        ] {
            assert!(
                body.contains(shown) || body.contains(&shown.replace("&#39;", "'")),
                "{shown}: {body}"
            );
        }
        assert!(body.contains("bob.dyn.example"), "{body}");
        assert!(!body.contains("login=alice") && !body.contains("home.dyn.example.net"));
        // The pfSense settings are a table, not Markdown source.
        assert!(body.contains("<th>field</th>"), "{body}");
        assert!(!body.contains("| field | value |"), "{body}");
        let server = if https {
            "ddns.example.net".to_string()
        } else {
            daemon.addr.to_string()
        };
        if https {
            assert!(body.contains("ssl=yes"), "{body}");
            assert!(body.contains(&format!(
                "https://{server}/nic/update?hostname=bob.dyn.example"
            )));
        } else {
            assert!(
                body.contains("ssl=no") && !body.contains("ssl=yes"),
                "{body}"
            );
            assert!(body.contains("ssl = false"), "{body}");
            assert!(
                body.contains(&format!(
                    "http://{server}/nic/update?hostname=bob.dyn.example"
                )),
                "{body}"
            );
        }
    }
}

/// Issue 31, item 2: an account's TSIG keys are shown on its keys page (name, algorithm, use),
/// never their secret, and never to another account.
#[test]
fn the_keys_page_lists_the_accounts_tsig_keys_without_their_secrets() {
    let (env, daemon) = seeded();
    let (_, secret) = crate::common::tsig_block_fields(&env.cli_ok(&[
        "tsig",
        "create",
        "alice",
        "--name",
        "alice-router",
    ]));
    env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "dyn.example",
        "--name",
        "external-dns",
    ]);
    let mut alice = Browser::new(&daemon);
    alice.sign_in("alice", PASSWORD);
    let page = alice.get("/dashboard/api-keys");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("TSIG keys (RFC 2136)"), "{}", page.body);
    assert!(page.body.contains("alice-router"), "{}", page.body);
    assert!(page.body.contains("hmac-sha256"));
    assert!(!page.body.contains(&secret), "no secret on the page");
    assert!(
        !page.body.contains("external-dns"),
        "an admin's key is not alice's"
    );
    let mut bob = Browser::new(&daemon);
    bob.sign_in("bob", PASSWORD);
    let page = bob.get("/dashboard/api-keys");
    assert!(!page.body.contains("alice-router"), "not another account's");
    assert!(
        !page.body.contains("TSIG keys (RFC 2136)"),
        "free plan: no keys, no section"
    );
}
