//! The account holder's pages in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver, with `fantoccini`). Sign in, the domains, the Update Help dialog
//! (tabs, keyboard, copy buttons and their checkmark), the history after an update through
//! `/nic/update`, API keys made and revoked, sign-out; a free user; another user's domain by
//! URL; a forged cross-site form; a phone-sized window.
//!
//! Skipped (a failure with `REQUIRE_E2E=1`) when `chromium` or `chromedriver` is missing;
//! `.ci/run` installs both.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Daemon, PASSWORD, TestEnv, free_port, require_tool};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// chromedriver and the browser session it drives; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A killed chromedriver leaves its Chromium running (each one about 200 MB, with its
        // renderers: a suite run left a dozen, which then starved the load tests). Every
        // process of this session's profile goes too, and is waited for.
        let pattern = format!("user-data-dir={}", self._profile.path().display());
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && Command::new("pgrep")
                .args(["-f", &pattern])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        {
            std::thread::yield_now();
        }
    }
}

/// Starts chromedriver on a free loopback port and opens a headless Chromium session with a
/// new profile; `None` (skipped) when the programs are not installed.
async fn browser() -> Option<Browser> {
    start_browser(true).await
}

/// [`browser`], with JavaScript on or off.
async fn start_browser(javascript: bool) -> Option<Browser> {
    if !require_tool("chromium") || !require_tool("chromedriver") {
        return None;
    }
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    // The flags of a closed machine: no background connections, no first-run pages.
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "prefs": {
                "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 },
            },
        }
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromedriver session");
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

/// Waits until `script` (a JavaScript expression) is true, or fails after 10 s.
async fn wait_until(client: &Client, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = client
            .execute(&format!("return Boolean({script});"), vec![])
            .await
            .unwrap();
        if value == json!(true) {
            return;
        }
        if Instant::now() >= deadline {
            let url = client.current_url().await.map(|url| url.to_string());
            let text = client
                .execute(
                    "return document.body ? document.body.innerText : ''",
                    vec![],
                )
                .await;
            panic!("never true: {script}\nat {url:?}\npage: {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of a JavaScript expression.
async fn eval(client: &Client, script: &str) -> serde_json::Value {
    client
        .execute(&format!("return ({script});"), vec![])
        .await
        .unwrap()
}

/// Clicks the element `css` finds.
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {css}: {error}"));
}

/// Presses `key` on the focused element.
async fn press(client: &Client, key: Key) {
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&char::from(key).to_string())
        .await
        .unwrap();
}

/// Signs in through the form.
async fn sign_in(client: &Client, daemon: &Daemon, login: &str, password: &str) {
    client
        .goto(&format!("http://{}/dashboard", daemon.addr))
        .await
        .unwrap();
    wait_until(client, "location.pathname === '/dashboard/login'").await;
    client
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click(client, "form button[type=submit]").await;
    wait_until(client, "location.pathname === '/dashboard'").await;
}

/// What the clipboard holds: pasted with Ctrl+V into a text area made for it (a real paste,
/// read back from the page), then removed. The area goes into the open dialog, if any: the
/// page behind a modal is inert.
async fn clipboard(client: &Client) -> String {
    eval(
        client,
        "(() => { const area = document.createElement('textarea'); area.id = 'paste-here'; \
         (document.querySelector('dialog[open]') || document.body).appendChild(area); area.focus(); return true; })()",
    )
    .await;
    let area = client.find(Locator::Id("paste-here")).await.unwrap();
    area.send_keys(&format!("{}v", char::from(Key::Control)))
        .await
        .unwrap();
    let text = eval(client, "document.getElementById('paste-here').value")
        .await
        .as_str()
        .unwrap()
        .to_string();
    eval(
        client,
        "(document.getElementById('paste-here').remove(), true)",
    )
    .await;
    text
}

/// Clicks a copy button and checks its checkmark: on at once, off again about 2 s later, and
/// the clipboard holding `expected`.
async fn copy_and_check(client: &Client, button: &Element, expected: &str) {
    assert_eq!(
        button.attr("data-copy").await.unwrap().as_deref(),
        Some(expected)
    );
    button.click().await.unwrap();
    let clicked = Instant::now();
    let label = button.find(Locator::Css(".copy-label")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while label.text().await.unwrap() != "✓" {
        assert!(Instant::now() < deadline, "no checkmark after the copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        button.attr("aria-label").await.unwrap().as_deref(),
        Some("Copied")
    );
    assert_eq!(clipboard(client).await, expected);
    while label.text().await.unwrap() == "✓" {
        assert!(
            clicked.elapsed() < Duration::from_millis(3500),
            "the checkmark stays"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown_for = clicked.elapsed();
    assert!(
        shown_for >= Duration::from_millis(1900),
        "the checkmark went after {shown_for:?}"
    );
    assert_eq!(label.text().await.unwrap(), "Copy");
}

fn count(env: &TestEnv, sql: &str) -> i64 {
    env.db().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holder_signs_in_reads_the_help_copies_and_manages_keys() {
    let Some(browser) = browser().await else {
        return;
    };
    let client = &browser.client;
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    let base = format!("http://{}", daemon.addr);
    sign_in(client, &daemon, "alice", PASSWORD).await;

    // The domains, each with its help button in the Actions column.
    let rows = eval(
        client,
        "Array.from(document.querySelectorAll('table.domains tbody tr')).map(r => r.innerText.replace(/\\s+/g, ' ').trim())",
    )
    .await;
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("home.dyn.example A — 60 s"), "{rows:?}");
    assert!(
        rows[1].starts_with("v6.dyn.example AAAA — 60 s"),
        "{rows:?}"
    );

    // The question mark opens the modal on the cURL / Script tab, focus on that tab.
    let help_button = client
        .find(Locator::Css(
            "a[aria-label='Update help for home.dyn.example']",
        ))
        .await
        .unwrap();
    help_button.click().await.unwrap();
    wait_until(client, "document.querySelector('dialog.help[open]')").await;
    let dialog_id = eval(client, "document.querySelector('dialog[open]').id").await;
    let dialog_id = dialog_id.as_str().unwrap().to_string();
    assert_eq!(
        eval(client, "document.activeElement.textContent").await,
        json!("cURL / Script")
    );
    let panel_hidden =
        |panel: &str| format!("document.getElementById('{dialog_id}-{panel}').hidden");
    assert_eq!(eval(client, &panel_hidden("curl")).await, json!(false));
    assert_eq!(eval(client, &panel_hidden("router")).await, json!(true));

    // The README's screenshot: the modal as a user first sees it.
    let screenshot = client.screenshot().await.unwrap();
    let shot_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("update-help-modal.png");
    std::fs::write(&shot_path, &screenshot).unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"));

    // The commands, with the key (alice holds one) as Bearer, and copy buttons that copy
    // exactly what is shown.
    let buttons = client
        .find_all(Locator::Css(
            "dialog[open] section[id$='-curl'] button.copy",
        ))
        .await
        .unwrap();
    assert_eq!(
        buttons.len(),
        3 + 4,
        "three commands, four alternative endpoints"
    );
    let bearer = format!(
        "curl -H \"Authorization: Bearer ak_YOUR_API_KEY\" \"{base}/nic/update?hostname=home.dyn.example&myip=203.0.113.7\""
    );
    copy_and_check(client, &buttons[1], &bearer).await;
    copy_and_check(client, &buttons[4], &format!("{base}/domains/v2/update")).await;

    // The Router tab, by mouse, then back by keyboard (arrow keys move between the tabs).
    click(client, "dialog[open] [role=tab][aria-controls$='-router']").await;
    assert_eq!(eval(client, &panel_hidden("router")).await, json!(false));
    assert_eq!(eval(client, &panel_hidden("curl")).await, json!(true));
    let router_text = eval(
        client,
        &format!("document.getElementById('{dialog_id}-router').innerText"),
    )
    .await;
    let router_text = router_text
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        router_text.contains(&format!("Server / Hostname {} Copy", daemon.addr)),
        "{router_text}"
    );
    assert!(router_text.contains("TP-Link routers with DDNS support"));
    assert!(router_text.contains("The full router setup guide"));
    let server_copy = client
        .find(Locator::Css(
            "dialog[open] section[id$='-router'] button.copy",
        ))
        .await
        .unwrap();
    copy_and_check(client, &server_copy, "dyndns2 / Custom").await;
    client
        .find(Locator::Css(
            "dialog[open] [role=tab][aria-controls$='-router']",
        ))
        .await
        .unwrap()
        .send_keys(&char::from(Key::Left).to_string())
        .await
        .unwrap();
    assert_eq!(eval(client, &panel_hidden("curl")).await, json!(false));
    assert_eq!(
        eval(client, "document.activeElement.textContent").await,
        json!("cURL / Script")
    );

    // Focus stays inside the modal: thirty Tabs never leave it, Shift+Tab from the first
    // element goes to the last.
    for _ in 0..30 {
        press(client, Key::Tab).await;
        assert_eq!(
            eval(
                client,
                "document.querySelector('dialog[open]').contains(document.activeElement)"
            )
            .await,
            json!(true)
        );
    }
    // Escape closes it and gives the focus back to the question mark.
    press(client, Key::Escape).await;
    wait_until(client, "!document.querySelector('dialog[open]')").await;
    assert_eq!(
        eval(client, "document.activeElement.getAttribute('aria-label')").await,
        json!("Update help for home.dyn.example")
    );

    // An update through /nic/update shows in the history.
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=198.51.100.23",
            &[
                ("Authorization", &format!("Bearer {}", seed.alice_key)),
                ("User-Agent", "browser-test-router/2.0"),
            ],
        )
        .assert(200, "good 198.51.100.23");
    click(
        client,
        "a[href='/dashboard/domains/home.dyn.example/history']",
    )
    .await;
    wait_until(client, "location.pathname.endsWith('/history')").await;
    let first_row = eval(client, "document.querySelector('tbody tr').innerText").await;
    let first_row = first_row.as_str().unwrap();
    for expected in [
        "198.51.100.23",
        "browser-test-router/2.0",
        "bearer",
        "documentation",
    ] {
        assert!(first_row.contains(expected), "{expected}: {first_row}");
    }

    // A key made on the page: shown once with its copy button, it updates; revoked, it does not.
    client
        .goto(&format!("{base}/dashboard/api-keys"))
        .await
        .unwrap();
    click(client, "form[action='/dashboard/api-keys'] button").await;
    wait_until(client, "document.querySelector('.created button.copy')").await;
    let copy_key = client
        .find(Locator::Css(".created button.copy"))
        .await
        .unwrap();
    let secret = copy_key.attr("data-copy").await.unwrap().unwrap();
    assert!(secret.starts_with("ak_"), "{secret}");
    copy_and_check(client, &copy_key, &secret).await;
    daemon
        .update_bearer(&secret, "hostname=home.dyn.example&myip=198.51.100.24")
        .assert(200, "good 198.51.100.24");
    client
        .goto(&format!("{base}/dashboard/api-keys"))
        .await
        .unwrap();
    assert_eq!(
        eval(
            client,
            &format!("document.body.innerText.includes('{secret}')")
        )
        .await,
        json!(false),
        "the key is shown once"
    );
    click(
        client,
        &format!("button[aria-label='Revoke {}']", &secret[..11]),
    )
    .await;
    wait_until(client, "document.querySelector('p.ok')").await;
    daemon
        .update_bearer(&secret, "hostname=home.dyn.example&myip=198.51.100.25")
        .assert(401, "badauth");

    // Signing out ends it: the pages send back to the sign-in form.
    click(client, "form.sign-out button").await;
    wait_until(client, "location.pathname === '/dashboard/login'").await;
    client
        .goto(&format!("{base}/dashboard/api-keys"))
        .await
        .unwrap();
    wait_until(client, "location.pathname === '/dashboard/login'").await;
    assert_eq!(count(&env, "SELECT count(*) FROM dashboard_sessions"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_users_see_the_paid_plan_message_and_never_another_users_domain() {
    let Some(browser) = browser().await else {
        return;
    };
    let client = &browser.client;
    let env = TestEnv::new();
    env.seed();
    env.add_user("carol", "carol@example.com", "pro");
    env.add_domain("carol.dyn.example", "carol", "A", Some("192.0.2.77"));
    let daemon = env.spawn("");
    let base = format!("http://{}", daemon.addr);

    sign_in(client, &daemon, "bob@EXAMPLE.com", PASSWORD).await;
    click(client, "a[data-help]").await;
    wait_until(client, "document.querySelector('dialog[open]')").await;
    let text = eval(client, "document.querySelector('dialog[open]').innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("Your plan (free) has no API keys"), "{text}");
    assert!(!text.contains("Authorization: Bearer"), "{text}");
    assert!(text.contains("curl -u \"bob:YOUR_PASSWORD\""), "{text}");
    client
        .goto(&format!("{base}/dashboard/api-keys"))
        .await
        .unwrap();
    let text = eval(client, "document.querySelector('main').innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("API keys come with the Plus, Pro and Elite plans"),
        "{text}"
    );
    // Another user's domain, by URL: the same page as a name that does not exist.
    for page in ["history", "help"] {
        client
            .goto(&format!(
                "{base}/dashboard/domains/carol.dyn.example/{page}"
            ))
            .await
            .unwrap();
        let text = eval(client, "document.querySelector('main').innerText").await;
        assert!(
            text.as_str()
                .unwrap()
                .contains("There is no such page, or it is not yours.")
        );
        assert_eq!(
            eval(client, "document.body.innerText.includes('192.0.2.77')").await,
            json!(false)
        );
    }

    // A paid user without a key is told to make one, with a link to the API Keys page.
    client.goto(&format!("{base}/dashboard")).await.unwrap();
    click(client, "form.sign-out button").await;
    wait_until(client, "location.pathname === '/dashboard/login'").await;
    sign_in(client, &daemon, "carol", PASSWORD).await;
    click(client, "a[data-help]").await;
    wait_until(client, "document.querySelector('dialog[open]')").await;
    let link = client
        .find(Locator::Css("dialog[open] a[href='/dashboard/api-keys']"))
        .await
        .unwrap();
    assert_eq!(
        link.text().await.unwrap(),
        "Generate one on the API Keys page"
    );
    let text = eval(client, "document.querySelector('dialog[open]').innerText").await;
    assert!(!text.as_str().unwrap().contains("Authorization: Bearer"));
    link.click().await.unwrap();
    wait_until(client, "location.pathname === '/dashboard/api-keys'").await;
}

/// Serves one page at `/` on loopback: the attacker's site.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_cross_site_form_is_refused_even_with_a_leaked_token() {
    let Some(browser) = browser().await else {
        return;
    };
    let client = &browser.client;
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    sign_in(client, &daemon, "alice", PASSWORD).await;
    client
        .goto(&format!("http://{}/dashboard/api-keys", daemon.addr))
        .await
        .unwrap();
    let csrf = eval(client, "document.querySelector('input[name=csrf]').value").await;
    let keys_before = count(&env, "SELECT count(*) FROM api_keys");
    // Another site (localhost is not the same site as 127.0.0.1) posts the key form, with the
    // victim's real token as if it had leaked.
    let port = serve_page(format!(
        "<!doctype html><form method=post action='http://{}/dashboard/api-keys'>\
         <input name=csrf value='{}'><input name=scope value='domains:update'></form>\
         <script>document.forms[0].submit()</script>",
        daemon.addr,
        csrf.as_str().unwrap()
    ));
    client
        .goto(&format!("http://localhost:{port}/"))
        .await
        .unwrap();
    wait_until(client, "location.pathname === '/dashboard/api-keys'").await;
    let text = eval(client, "document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("did not come from these pages"),
        "{text}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM api_keys"), keys_before);
    assert!(daemon.log().contains("dashboard form refused"));
    // The victim is still signed in.
    client
        .goto(&format!("http://{}/dashboard", daemon.addr))
        .await
        .unwrap();
    wait_until(client, "location.pathname === '/dashboard'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_fit_a_phone() {
    let Some(browser) = browser().await else {
        return;
    };
    let client = &browser.client;
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    client.set_window_size(390, 844).await.unwrap();
    sign_in(client, &daemon, "alice", PASSWORD).await;
    for path in [
        "/dashboard",
        "/dashboard/api-keys",
        "/dashboard/guide",
        "/dashboard/domains/home.dyn.example/history",
    ] {
        client
            .goto(&format!("http://{}{path}", daemon.addr))
            .await
            .unwrap();
        assert_eq!(
            eval(
                client,
                "document.documentElement.scrollWidth <= window.innerWidth"
            )
            .await,
            json!(true),
            "{path} is wider than the phone"
        );
    }
    client
        .goto(&format!("http://{}/dashboard", daemon.addr))
        .await
        .unwrap();
    click(client, "a[data-help]").await;
    wait_until(client, "document.querySelector('dialog[open]')").await;
    assert_eq!(
        eval(
            client,
            "document.querySelector('dialog[open]').getBoundingClientRect().width <= window.innerWidth"
        )
        .await,
        json!(true),
        "the dialog fits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_everything_but_copying_works() {
    let Some(browser) = start_browser(false).await else {
        return;
    };
    let client = &browser.client;
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    sign_in(client, &daemon, "alice", PASSWORD).await;
    assert_eq!(
        client.execute("return 1", vec![]).await.ok(),
        Some(json!(1)),
        "WebDriver's own scripts still run"
    );
    // The question mark is a link to the help page: both tabs' content, one under the other,
    // no copy buttons, no tab list.
    click(client, "a[aria-label='Update help for home.dyn.example']").await;
    wait_until(
        client,
        "location.pathname === '/dashboard/domains/home.dyn.example/help'",
    )
    .await;
    let text = eval(client, "document.querySelector('main').innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("curl -H \"Authorization: Bearer"), "{text}");
    assert!(text.contains("Server / Hostname"), "{text}");
    for hidden in ["button.copy", "[role=tablist]"] {
        let shown = client
            .find(Locator::Css(hidden))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap();
        assert!(!shown, "{hidden} is shown without JavaScript");
    }
    // Forms work: a key is made and shown, and signing out signs out.
    client
        .goto(&format!("http://{}/dashboard/api-keys", daemon.addr))
        .await
        .unwrap();
    click(client, "form[action='/dashboard/api-keys'] button").await;
    wait_until(client, "document.querySelector('.created code')").await;
    click(client, "form.sign-out button").await;
    wait_until(client, "location.pathname === '/dashboard/login'").await;
}
