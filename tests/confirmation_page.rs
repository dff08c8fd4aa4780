//! The confirmation page in a real headless browser (Debian's chromium and chromium-driver, which
//! `dev/bin/ensure-browser` installs): the real verify handler served over HTTP with its own
//! headers (the strict Content Security Policy among them), the in-memory stack behind it, and the
//! links exactly as the emails carry them. Opening a link changes nothing; only the button does.

use chrono::Duration;
use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::support::browser::{Browser, Options};
use crate::support::http::{Served, serve_verifier};
use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::domain::{Language, RequestId, RequestKind, Status, VerificationToken};
use privacy_shared::mail::Mailer;
use privacy_shared::mail::templates::kind_label;
use privacy_shared::store::{LiveToken, TokenSlot};

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
    let browser = Browser::open(Options::default()).await;

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
    let browser = Browser::open(Options::default()).await;

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
    let browser = Browser::open(Options::default()).await;
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
    let browser = Browser::open(Options::default()).await;

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
    let browser = Browser::open(Options::default()).await;

    browser.goto(&link).await;
    // The preview is the script's work, and the layout the style's: both ran under the policy.
    previewed(&browser).await;
    assert_quiet_console(&browser).await;
    // The policy governs the page's own scripts, not the test's: axe-core runs in it, and the
    // browser reports no refusal.
    assert_eq!(browser.axe().await, []);
    assert_eq!(browser.script("return typeof window.axe").await, json!("object"));
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
        .recipient_confirmation(&record, &token, expires_at.date_naive(), deps.config.status_page())
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
    let browser = Browser::open(Options::default()).await;

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
    let browser = Browser::open(Options::default()).await;

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

/// The page's language, as the tests name their screenshots (`verify-en-summary.png`).
fn tag(language: Language) -> &'static str {
    language.as_str()
}

/// A request in `language` (from the Netherlands for Dutch), and its emailed link.
async fn submitted_in(
    stack: &Local,
    served: &Served,
    language: Language,
    kind: &str,
    label: &str,
) -> (RequestId, String) {
    let region = match language {
        Language::En => "DE",
        Language::Nl => "NL",
    };
    let address = unique_address(label);
    submitted(stack, served, json!({"email": address, "kind": kind, "region": region})).await
}

/// Every state the page shows with its script, in `language`: each broken WCAG 2.1 AA rule is
/// named, and each state is kept as `target/pages/verify-<lang>-<state>.png`.
async fn assert_every_state_accessible(language: Language) {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let lang = tag(language);
    let browser = Browser::open(Options::preferring(&format!("{lang},en"))).await;

    browser.goto(&format!("{}/verify?lang={lang}", served.base)).await;
    browser.shown("#verify-form").await;
    assert_eq!(browser.script("return document.documentElement.lang").await, json!(lang));
    browser.assert_accessible(&format!("verify-{lang}-form")).await;

    // A deletion shows all the summary has: the kind and the warning.
    let (id, link) = submitted_in(&stack, &served, language, "deletion", "axe-summary").await;
    browser.goto(&link).await;
    previewed(&browser).await;
    browser.shown("#summary-warning:not([hidden])").await;
    browser.assert_accessible(&format!("verify-{lang}-summary")).await;

    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    browser.shown("#status.verified").await;
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    browser.assert_accessible(&format!("verify-{lang}-confirmed")).await;

    // A code that is not (any more) valid: the used one again.
    browser.goto("about:blank").await;
    browser.goto(&link).await;
    browser.shown("#status.failed").await;
    browser.shown("#verify-form").await;
    browser.assert_accessible(&format!("verify-{lang}-failed")).await;
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn the_english_page_breaks_no_wcag_21_aa_rule_in_any_state() {
    assert_every_state_accessible(Language::En).await;
}

#[tokio::test]
async fn the_dutch_page_breaks_no_wcag_21_aa_rule_in_any_state() {
    assert_every_state_accessible(Language::Nl).await;
}

#[tokio::test]
async fn the_keyboard_alone_reaches_the_button_with_a_visible_focus_at_every_stop() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let (id, link) = submitted_in(&stack, &served, Language::En, "access", "page-focus").await;
    let browser = Browser::open(Options::default()).await;

    browser.goto(&format!("{}/verify?lang=en", served.base)).await;
    // Every stop of the empty page shows where the focus is.
    for stop in ["a[hreflang=en]", "a[hreflang=nl]", "#request_id", "#token", "#verify-form button"] {
        browser.tab_to(stop, 1).await;
        assert!(browser.focus_is_visible().await, "the focus on {stop} is not visible");
    }

    browser.goto(&link).await;
    previewed(&browser).await;
    browser.tab_to("#confirm", 3).await;
    assert!(browser.focus_is_visible().await, "the focus on the button is not visible");
    browser.screenshot("verify-en-summary-focused").await;
    assert_eq!(status_of(&stack, id).await, Status::PendingVerification);
    browser.press_enter().await;
    browser.shown("#status.verified").await;
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    assert!(browser.focus_is_visible().await, "the outcome has the focus, visibly");
    assert_quiet_console(&browser).await;
    browser.quit().await;
}

/// Types the reference and code into the page's form and sends it, by keyboard only.
async fn type_code(browser: &Browser, reference: &str, code: &str) {
    browser.client.find(Locator::Id("request_id")).await.unwrap().send_keys(reference).await.unwrap();
    browser.press(&[Key::Tab]).await;
    browser.client.find(Locator::Id("token")).await.unwrap().send_keys(code).await.unwrap();
    browser.press_enter().await;
}

#[tokio::test]
async fn without_javascript_the_reference_and_code_from_the_email_confirm_the_request_in_two_steps() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let (id, link) = submitted_in(&stack, &served, Language::En, "deletion", "page-no-script").await;
    let (_, code) = fragment_parts(&link);
    let browser = Browser::open(Options::default().without_javascript()).await;

    // The link itself: the fragment cannot be read without a script, and the page says so.
    browser.goto(&link).await;
    let notice = browser.shown("noscript p").await;
    assert!(notice.contains("works without JavaScript"), "{notice}");
    assert!(!browser.is_displayed("#summary").await);
    browser.assert_accessible("verify-en-nojs-form").await;

    // Step 1: what the code would confirm, from the server. Nothing is confirmed yet.
    type_code(&browser, &id.to_string(), &code).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Deletion, Language::En));
    assert!(browser.shown("#summary-warning").await.contains("cannot be undone"));
    assert_eq!(status_of(&stack, id).await, Status::PendingVerification);
    assert_eq!(served.posts(), ["/verify"], "no script, no preview route");
    // The code is in the button's form only, never in what the page shows.
    assert!(!browser.text("body").await.contains(&code));
    let hidden =
        browser.script("return document.querySelector('#confirm-form input[name=token]').value").await;
    assert_eq!(hidden, json!(code));
    // The answer puts the focus where the script would: on what is being confirmed.
    assert_eq!(browser.script("return document.activeElement.id").await, json!("summary-heading"));
    browser.assert_accessible("verify-en-nojs-summary").await;

    // Step 2: the button, reached and pressed (Space, as a button takes it) by keyboard.
    browser.tab_to("#confirm", 3).await;
    assert!(browser.focus_is_visible().await);
    browser.press_space().await;
    let outcome = browser.shown("#status.verified").await;
    assert!(outcome.contains("Your request is confirmed"), "{outcome}");
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    assert_eq!(served.posts(), ["/verify", "/verify"]);
    assert!(!browser.is_displayed("#verify-form").await);
    assert_eq!(browser.script("return document.activeElement.id").await, json!("status"));
    browser.assert_accessible("verify-en-nojs-confirmed").await;

    // The same code again: refused in words, the reference kept, the code not.
    browser.goto(&format!("{}/verify?lang=en", served.base)).await;
    type_code(&browser, &id.to_string(), &code).await;
    let refused = browser.shown("#status.failed").await;
    assert!(refused.contains("not valid"), "{refused}");
    let typed = browser
        .script(
            "return [document.getElementById('request_id').value, document.getElementById('token').value]",
        )
        .await;
    assert_eq!(typed, json!([id.to_string(), ""]));
    browser.assert_accessible("verify-en-nojs-failed").await;
    browser.quit().await;
}

#[tokio::test]
async fn without_javascript_a_dutch_request_is_summed_up_and_confirmed_in_dutch() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let (id, link) = submitted_in(&stack, &served, Language::Nl, "access", "page-no-script-nl").await;
    let (_, code) = fragment_parts(&link);
    let browser = Browser::open(Options::preferring("nl-NL,nl").without_javascript()).await;

    browser.goto(&format!("{}/verify", served.base)).await;
    assert_eq!(browser.script("return document.documentElement.lang").await, json!("nl"));
    browser.assert_accessible("verify-nl-nojs-form").await;
    type_code(&browser, &id.to_string(), &code).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#summary-kind").await, kind_label(RequestKind::Access, Language::Nl));
    assert_eq!(browser.text("#confirm").await, "Mijn verzoek bevestigen");
    browser.assert_accessible("verify-nl-nojs-summary").await;
    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    let outcome = browser.shown("#status.verified").await;
    assert!(outcome.contains("Uw verzoek is bevestigd"), "{outcome}");
    assert_eq!(status_of(&stack, id).await, Status::Verified);
    browser.assert_accessible("verify-nl-nojs-confirmed").await;

    browser.goto(&format!("{}/verify", served.base)).await;
    type_code(&browser, &id.to_string(), "not-the-code").await;
    assert!(browser.shown("#status.failed").await.contains("niet geldig"));
    browser.assert_accessible("verify-nl-nojs-failed").await;
    browser.quit().await;
}

#[tokio::test]
async fn without_javascript_a_recipient_code_typed_as_the_email_says_confirms_the_recipient() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let address = unique_address("page-no-script-recipient");
    let third_party = unique_address("page-no-script-provider");
    let body = json!({"email": address, "kind": "portability", "region": "DE", "recipient": third_party});
    let (id, link) = submitted(&stack, &served, body).await;
    let (_, token) = fragment_parts(&link);
    assert_eq!(verify_with(&stack.verifier(), &id.to_string(), &token).await.0, 200);
    let (_, code) = recipient_link(&stack, &served, id, &address).await;
    let browser = Browser::open(Options::default().without_javascript()).await;

    browser.goto(&format!("{}/verify?lang=en", served.base)).await;
    type_code(&browser, &id.to_string(), &code).await;
    previewed(&browser).await;
    assert_eq!(browser.text("#recipient").await, third_party);
    assert_eq!(browser.text("#confirm").await, "Confirm this recipient");
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_none());
    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    browser.shown("#status.recipient-confirmed").await;
    assert!(stack.store.get(id).await.unwrap().unwrap().recipient_confirmed_at.is_some());
    browser.quit().await;
}

/// The page's form as a browser on the page would post it.
async fn post_form(served: &Served, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| {
            format!("{name}={}", value.replace('%', "%25").replace('&', "%26").replace(' ', "+"))
        })
        .collect();
    let mut request = reqwest::Client::new()
        .post(format!("{}/verify", served.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"));
    if !headers.iter().any(|(name, _)| *name == "sec-fetch-site") {
        request = request.header("sec-fetch-site", "same-origin");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn a_form_refused_without_javascript_says_why_in_words_with_a_4xx_in_the_pages_language() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let (id, link) = submitted_in(&stack, &served, Language::En, "access", "page-form-errors").await;
    let (_, code) = fragment_parts(&link);
    let id = id.to_string();

    let (status, page) = post_form(&served, &[("request_id", &id), ("token", ""), ("lang", "en")], &[]).await;
    assert_eq!(status, 400);
    assert!(page.contains("Enter both the reference and the code"), "{page}");
    assert!(page.contains(&format!("value=\"{id}\"")), "the reference is kept");
    // No `lang` field: the browser's preference.
    let dutch = [("accept-language", "nl-NL,nl;q=0.9")];
    let (status, page) = post_form(&served, &[("request_id", &id), ("token", "wrong")], &dutch).await;
    assert_eq!(status, 400);
    assert!(page.contains("<html lang=\"nl\">") && page.contains("niet geldig"), "{page}");
    let (status, page) = post_form(&served, &[("request_id", "nope"), ("token", &code)], &[]).await;
    assert_eq!(status, 400);
    assert!(page.contains("not valid") && !page.contains(&code), "the code is never echoed");
    let (status, _) =
        post_form(&served, &[("request_id", &id), ("token", &code), ("confirm", "both")], &[]).await;
    assert_eq!(status, 400);
    let answer = reqwest::Client::new()
        .post(format!("{}/verify", served.base))
        .header("content-type", "application/json")
        .body(json!({"request_id": id, "token": code}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 415);
    assert!(answer.text().await.unwrap().contains("The form could not be read"));

    // Wrong codes (of the right shape) count like the script's: at the limit the link is locked.
    let wrong = VerificationToken::generate();
    let mut last = (0, String::new());
    for _ in 0..5 {
        last =
            post_form(&served, &[("request_id", &id), ("token", wrong.expose_secret()), ("lang", "en")], &[])
                .await;
        if last.0 == 403 {
            break;
        }
        assert_eq!(last.0, 400);
    }
    assert_eq!(last.0, 403, "{}", last.1);
    assert!(last.1.contains("Too many wrong attempts"), "{}", last.1);
    let (status, _) = post_form(&served, &[("request_id", &id), ("token", &code)], &[]).await;
    assert_eq!(status, 403, "the right code no longer works either");
    assert_eq!(status_of(&stack, id.parse().unwrap()).await, Status::PendingVerification);
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_and_spends_nothing() {
    let stack = Local::new();
    let served = serve_verifier(stack.verifier()).await;
    let (id, link) = submitted_in(&stack, &served, Language::En, "deletion", "page-cross-site").await;
    let (_, code) = fragment_parts(&link);
    // Another site (`localhost` is not `127.0.0.1`) with a form that would confirm the deletion.
    let target = format!("{}/verify", served.base);
    let forged = format!(
        "<!doctype html><html lang=\"en\"><head><title>Win a prize</title></head><body><main>\
         <form method=\"post\" action=\"{target}\"><input type=\"hidden\" name=\"request_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"token\" value=\"{code}\"><input type=\"hidden\" name=\"confirm\" value=\"request\">\
         <input type=\"hidden\" name=\"step\" value=\"confirm\"><button id=\"prize\">Claim</button></form></main></body></html>"
    );
    let elsewhere = crate::support::http::serve(move |_| {
        let html = forged.clone();
        async move {
            let mut response = lambda_http::Response::new(lambda_http::Body::Text(html));
            response.headers_mut().insert("content-type", "text/html".parse().unwrap());
            response
        }
    })
    .await;
    let browser = Browser::open(Options::default().without_javascript()).await;

    browser.goto(&elsewhere.base.replacen("127.0.0.1", "localhost", 1)).await;
    browser.client.find(Locator::Id("prize")).await.unwrap().click().await.unwrap();
    let answer = browser.shown("body").await;
    assert!(answer.contains("cross_site"), "{answer}");
    assert_eq!(served.posts(), ["/verify"]);
    assert_eq!(status_of(&stack, id).await, Status::PendingVerification);
    // Refused before anything was read or counted: the code is as good as before.
    assert_eq!(
        post_form(
            &served,
            &[("request_id", &id.to_string()), ("token", &code)],
            &[("sec-fetch-site", "cross-site")]
        )
        .await
        .0,
        403
    );
    assert_eq!(verify_with(&stack.verifier(), &id.to_string(), &code).await.0, 200);
    browser.quit().await;
}
