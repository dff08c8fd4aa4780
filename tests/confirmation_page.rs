//! The confirmation page in a real headless browser (Debian's chromium and chromium-driver, which
//! `dev/bin/ensure-browser` installs): the real verify handler served over HTTP with its own
//! headers (the strict Content Security Policy among them), the in-memory stack behind it, and the
//! links exactly as the emails carry them. Opening a link changes nothing; only the button does.

use chrono::Duration;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::support::http::{Served, serve_verifier};
use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::domain::{Language, RequestId, RequestKind, Status, VerificationToken};
use privacy_shared::mail::Mailer;
use privacy_shared::mail::templates::kind_label;
use privacy_shared::store::{LiveToken, TokenSlot};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Long enough for a cold browser on a busy machine; a page that never renders still fails.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// A chromedriver this test started, and the profile of the Chromium it drives. Dropping it ends
/// both (they run in their own process group) and removes the profile, also when a test fails
/// halfway.
struct Driver {
    process: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.process.id())]).status();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One headless Chromium behind its own chromedriver, with a fresh profile, preferring English.
struct Browser {
    client: Client,
    url: String,
    _driver: Driver,
}

impl Browser {
    async fn open() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run dev/bin/ensure-browser (the confirmation page is tested in a real browser)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that dropping the driver also ends the Chromium it starts.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let profile =
            std::env::temp_dir().join(format!("confirmation-page-{}", uuid::Uuid::new_v4().simple()));
        let driver = Driver { process, profile };
        std::fs::create_dir_all(&driver.profile).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        ready(&url).await;

        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", driver.profile.display()),
                    "--lang=en-US", "--accept-lang=en-US,en",
                ],
                "prefs": {"intl.accept_languages": "en-US,en"},
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver does not start Chromium: {e}"));
        Browser { client, url, _driver: driver }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits until `css` matches an element; returns its text once it is shown.
    async fn shown(&self, css: &str) -> String {
        let element = match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("{css} never appeared ({e}); the page says: {}", self.text("body").await),
        };
        assert!(element.is_displayed().await.unwrap(), "{css} is in the page but not shown");
        element.text().await.unwrap()
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn is_displayed(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.unwrap().is_displayed().await.unwrap()
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.unwrap()
    }

    /// Keys pressed on the keyboard, wherever the focus is (no element is addressed).
    async fn press(&self, keys: &[Key]) {
        let mut typing = KeyActions::new("keyboard".to_owned());
        for key in keys {
            typing = typing
                .then(KeyAction::Down { value: (*key).into() })
                .then(KeyAction::Up { value: (*key).into() });
        }
        self.client.perform_actions(typing).await.unwrap();
    }

    /// What reached the console, Chromium's own reports (CSP violations) included.
    async fn console(&self) -> Vec<Value> {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a log as JSON");
        answer["value"].as_array().cloned().unwrap_or_else(|| panic!("no browser log: {answer}"))
    }

    async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Waits for a just-started chromedriver to take sessions.
async fn ready(url: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = reqwest::get(format!("{url}/status")).await.ok();
        if let Some(answer) = status {
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if body["value"]["ready"] == json!(true) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start on {url}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The confirmation link in the newest mail to `address`, pointed at the served page.
async fn emailed_link(stack: &Local, address: &str, served: &Served) -> (RequestId, String) {
    let mails = stack.mail_to(address).await;
    let link = mails
        .last()
        .expect("a mail with a link")
        .links()
        .into_iter()
        .find(|l| l.starts_with(&format!("{PUBLIC_BASE_URL}/verify?")) && l.contains('#'))
        .expect("the mail links to the confirmation page");
    let (id, _) = fragment_parts(&link);
    (RequestId::parse(&id).unwrap(), link.replacen(PUBLIC_BASE_URL, &served.base, 1))
}

/// A request submitted through intake, and the link of its verification email.
async fn submitted(stack: &Local, served: &Served, body: Value) -> (RequestId, String) {
    let (status, answer) = submit(&stack.deps(), &body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    emailed_link(stack, body["email"].as_str().unwrap(), served).await
}

async fn status_of(stack: &Local, id: RequestId) -> Status {
    stack.store.get(id).await.unwrap().expect("the request is stored").status
}

/// Waits until the page shows what the link would confirm.
async fn previewed(browser: &Browser) {
    browser.shown("#summary:not([hidden])").await;
}

/// No refusal by the page's own policy and no script error on the console. (A refused code's
/// 400 is logged as a network error: that is the page working.)
async fn assert_quiet_console(browser: &Browser) {
    let entries = browser.console().await;
    let complaints: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            (e["level"] == "SEVERE" && e["source"] != "network")
                || e["source"] == "security"
                || e["message"].as_str().is_some_and(|m| m.contains("Content Security Policy"))
        })
        .collect();
    // Chromium names the page with its fragment: the token stays out of the test's output.
    let redacted: Vec<String> = complaints
        .iter()
        .map(|e| {
            let message = e["message"].as_str().unwrap_or_default();
            match message.split_once('#') {
                Some((page, rest)) => format!("{page}#… {}", rest.split_once(' ').map_or("", |(_, r)| r)),
                None => message.to_owned(),
            }
        })
        .collect();
    assert!(redacted.is_empty(), "the console reported: {redacted:#?}");
}

#[tokio::test]
async fn a_deletion_link_only_previews_and_warns_until_the_button_confirms_it() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let address = unique_address("page-deletion");
    let (id, link) =
        submitted(&stack, &served, json!({"email": address, "kind": "deletion", "region": "DE"})).await;
    let browser = Browser::open().await;

    browser.goto(&link).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Deletion, Language::En));
    let warning = browser.shown("#summary-warning:not([hidden])").await;
    assert!(warning.contains("cannot be undone"), "{warning}");
    assert!(!browser.is_displayed("#summary-recipient").await);
    // Opening the link (and letting its script run) asked only what it would confirm.
    assert_eq!(status_of(&stack, id).await, Status::PendingVerification);
    assert_eq!(served.posts(), [format!("/requests/{id}/preview")]);
    // The secret left the address bar.
    let address_bar = browser.client.current_url().await.unwrap();
    assert!(address_bar.fragment().is_none(), "{address_bar}");

    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    let outcome = browser.shown("#status.verified").await;
    assert!(outcome.contains("Your request is confirmed"), "{outcome}");
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    assert_eq!(served.posts(), [format!("/requests/{id}/preview"), format!("/requests/{id}/verify")]);
    assert!(!browser.is_displayed("#summary").await);
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn the_keyboard_alone_confirms_with_tab_and_enter() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let address = unique_address("page-keyboard");
    let (id, link) =
        submitted(&stack, &served, json!({"email": address, "kind": "access", "region": "DE"})).await;
    let browser = Browser::open().await;

    browser.goto(&link).await;
    previewed(&browser).await;
    // The page moved the focus to what it shows; the next stop is the button.
    browser.press(&[Key::Tab]).await;
    assert_eq!(browser.script("return document.activeElement.id").await, json!("confirm"));
    assert_eq!(status_of(&stack, id).await, Status::PendingVerification);
    browser.press(&[Key::Enter]).await;
    browser.shown("#status.verified").await;
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    // The outcome has the focus, so a screen reader reads it out.
    assert_eq!(browser.script("return document.activeElement.id").await, json!("status"));
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn the_page_speaks_the_language_of_the_request_not_of_the_browser() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let browser = Browser::open().await;
    let preferred = browser.script("return navigator.languages").await;
    assert_eq!(preferred[0], json!("en-US"), "the browser prefers English: {preferred}");

    // A Dutch request (from the Netherlands), its link without `?lang`.
    let dutch = unique_address("page-dutch");
    let (_, link) =
        submitted(&stack, &served, json!({"email": dutch, "kind": "access", "region": "NL"})).await;
    let bare = link.replacen("?lang=nl", "", 1);
    assert_ne!(bare, link, "the email's link names the language: {link}");
    browser.goto(&bare).await;
    previewed(&browser).await;
    assert_eq!(browser.script("return document.documentElement.lang").await, json!("nl"));
    assert_eq!(browser.text("h1").await, "Bevestig uw privacyverzoek");
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Access, Language::Nl));
    assert_eq!(browser.text("#confirm").await, "Mijn verzoek bevestigen");
    assert!(served.seen().contains(&"GET /verify?lang=nl".to_owned()), "{:?}", served.seen());

    // An English request, even through a link that names Dutch (opened afresh, not in the page
    // already showing the Dutch request).
    browser.goto("about:blank").await;
    let english = unique_address("page-english");
    let (_, link) =
        submitted(&stack, &served, json!({"email": english, "kind": "access", "region": "DE"})).await;
    browser.goto(&link.replacen("?lang=en", "?lang=nl", 1)).await;
    previewed(&browser).await;
    assert_eq!(browser.script("return document.documentElement.lang").await, json!("en"));
    assert_eq!(browser.text("h1").await, "Confirm your privacy request");
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Access, Language::En));
    assert_eq!(browser.text("#confirm").await, "Confirm my request");
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn a_recipient_link_shows_the_recipients_address_and_confirms_only_on_the_button() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let address = unique_address("page-portability");
    let third_party = unique_address("page-new-provider");
    let body = json!({"email": address, "kind": "portability", "region": "DE", "recipient": third_party});
    let (id, link) = submitted(&stack, &served, body).await;
    let (_, token) = fragment_parts(&link);
    assert_eq!(verify_with(&stack.verifier(), &id.to_string(), &token).await.0, 200);
    // The second link, as dispatch mails it.
    let (link, _) = recipient_link(&stack, &served, id, &address).await;
    assert!(link.contains("confirm=recipient"), "{link}");
    let browser = Browser::open().await;

    browser.goto(&link).await;
    previewed(&browser).await;
    assert_eq!(browser.shown("#recipient").await, third_party);
    assert_eq!(browser.text("#confirm").await, "Confirm this recipient");
    assert!(!browser.is_displayed("#summary-warning").await);
    let posts_before = served.posts();
    assert_eq!(posts_before.last(), Some(&format!("/requests/{id}/preview")));
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_none());

    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    let outcome = browser.shown("#status.recipient-confirmed").await;
    assert!(outcome.contains("The recipient is confirmed"), "{outcome}");
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_some());
    assert_eq!(served.posts().last(), Some(&format!("/requests/{id}/recipient")));
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn the_page_works_under_its_own_strict_content_security_policy() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let page = reqwest::get(format!("{}/verify", served.base)).await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'"]
    {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let address = unique_address("page-policy");
    let (_, link) =
        submitted(&stack, &served, json!({"email": address, "kind": "objection", "region": "DE"})).await;
    let browser = Browser::open().await;

    browser.goto(&link).await;
    // The preview is the script's work, and the layout the style's: both ran under the policy.
    previewed(&browser).await;
    assert_quiet_console(&browser).await;
    let width = browser.script("return getComputedStyle(document.querySelector('main')).maxWidth").await;
    assert_eq!(width, json!("544px"));
    browser.quit().await;
}

/// Issues the second link as dispatch does and mails it; returns the recipient's link and code.
async fn recipient_link(stack: &Local, served: &Served, id: RequestId, address: &str) -> (String, String) {
    let deps = stack.deps();
    let token = VerificationToken::generate();
    let expires_at = stack.clock.now() + Duration::days(7);
    let live = LiveToken { token_hash: token.hash(), expires_at };
    assert!(deps.store.issue_token(id, TokenSlot::Recipient, &live, stack.clock.now()).await.unwrap());
    let record = deps.store.get(id).await.unwrap().unwrap();
    let email = deps
        .templates
        .recipient_confirmation(&record, &token, expires_at.date_naive(), PUBLIC_BASE_URL)
        .unwrap();
    assert!(email.text.contains(&format!("{PUBLIC_BASE_URL}/verify?lang=en")), "the email names the page");
    deps.mailer.send(&email).await.unwrap();
    let (_, link) = emailed_link(stack, address, served).await;
    let (_, code) = fragment_parts(&link);
    (link, code)
}

#[tokio::test]
async fn a_recipient_code_typed_into_the_page_as_the_email_says_confirms_the_recipient() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let address = unique_address("page-recipient-code");
    let third_party = unique_address("page-typed-provider");
    let body = json!({"email": address, "kind": "portability", "region": "DE", "recipient": third_party});
    let (id, link) = submitted(&stack, &served, body).await;
    let (_, token) = fragment_parts(&link);
    assert_eq!(verify_with(&stack.verifier(), &id.to_string(), &token).await.0, 200);
    let (_, code) = recipient_link(&stack, &served, id, &address).await;
    let browser = Browser::open().await;

    // The page the email names, the reference and code typed in, by keyboard only.
    browser.goto(&format!("{}/verify?lang=en", served.base)).await;
    browser.client.find(Locator::Id("request_id")).await.unwrap().send_keys(&id.to_string()).await.unwrap();
    browser.press(&[Key::Tab]).await;
    browser.client.find(Locator::Id("token")).await.unwrap().send_keys(&code).await.unwrap();
    browser.press(&[Key::Enter]).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#recipient").await, third_party);
    assert_eq!(browser.text("#confirm").await, "Confirm this recipient");
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_none());

    browser.press(&[Key::Tab, Key::Enter]).await;
    browser.shown("#status.recipient-confirmed").await;
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_some());
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn a_second_link_opened_in_the_same_tab_shows_and_confirms_its_own_request() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let first_address = unique_address("page-first");
    let (first, first_link) =
        submitted(&stack, &served, json!({"email": first_address, "kind": "access", "region": "DE"})).await;
    let second_address = unique_address("page-second");
    let (second, second_link) =
        submitted(&stack, &served, json!({"email": second_address, "kind": "deletion", "region": "DE"}))
            .await;
    let browser = Browser::open().await;

    browser.goto(&first_link).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Access, Language::En));
    // Same page and language: for the browser only the fragment changes, and the page stays.
    browser.goto(&second_link).await;
    browser.shown("#summary-warning:not([hidden])").await;
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Deletion, Language::En));

    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    browser.shown("#status.verified").await;
    assert_eq!(status_of(&stack, second).await, Status::Verified);
    assert_eq!(status_of(&stack, first).await, Status::PendingVerification);
    assert_quiet_console(&browser).await;
    browser.quit().await;
}
