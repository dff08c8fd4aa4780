//! The privacy center's start page and forms in a real headless Chromium, served by the real
//! intake handler (in-memory stack): every page in English and Dutch with 0 axe violations at
//! WCAG 2.1 AA (screenshots under `target/pages/center-*.png`), a keyboard-only way from the
//! start page to a sent request, the form with JavaScript off, Global Privacy Control, and the
//! agent path. The whole journey through every function is in `privacy_center_journey`.

use fantoccini::Locator;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use std::sync::Arc;

use crate::support::browser::{Browser, Options};
use crate::support::http::{Served, serve};
use crate::support::*;
use privacy_shared::domain::RequestId;
use privacy_shared::store::Requests;

/// The intake function over HTTP, on the in-memory stack.
async fn serve_intake(local: &Local) -> Served {
    let deps = Arc::new(local.deps());
    serve(move |request| {
        let deps = deps.clone();
        async move { intake::handle(&deps, request).await.unwrap_or_else(|never| match never {}) }
    })
    .await
}

async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser.client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn choose(browser: &Browser, css: &str, value: &str) {
    browser.client.find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
}

/// Typed on the keyboard, wherever the focus is.
async fn type_text(browser: &Browser, text: &str) {
    let mut typing = KeyActions::new("typing".to_owned());
    for c in text.chars() {
        typing = typing.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c });
    }
    browser.client.perform_actions(typing).await.unwrap();
}

async fn send(browser: &Browser) {
    browser
        .client
        .find(Locator::Css("#request-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn every_page_of_the_privacy_center_is_accessible_in_english_and_in_dutch() {
    let local = Local::new();
    let served = serve_intake(&local).await;
    for (lang, languages) in [("en", "en-US,en"), ("nl", "nl-NL,nl")] {
        let browser = Browser::open(Options::preferring(languages)).await;
        let base = &served.base;
        browser.goto(&format!("{base}/privacy")).await;
        assert_eq!(browser.script("return document.documentElement.lang").await, lang);
        browser.assert_accessible(&format!("center-start-{lang}")).await;
        for region in ["NL", "US-CA"] {
            browser.goto(&format!("{base}/privacy?region={region}")).await;
            browser.shown(".rights").await;
            browser.assert_accessible(&format!("center-rights-{region}-{lang}")).await;
        }
        for kind in privacy_shared::domain::RequestKind::ALL {
            let kind = kind.as_str();
            browser.goto(&format!("{base}/privacy/{kind}?region=US-CA")).await;
            browser.shown("#request-form").await;
            browser.assert_accessible(&format!("center-form-{kind}-{lang}")).await;
        }
        browser.goto(&format!("{base}/privacy/access?region=NL&for=someone")).await;
        browser.assert_accessible(&format!("center-form-agent-{lang}")).await;

        // The form refused: the problems listed and named at their fields.
        browser.goto(&format!("{base}/privacy/rectification?region=NL")).await;
        fill(&browser, "#email", "not-an-address").await;
        send(&browser).await;
        browser.shown("#problems").await;
        assert!(browser.text("#email-error").await.len() > 5);
        browser.assert_accessible(&format!("center-form-problems-{lang}")).await;

        // And sent.
        browser.goto(&format!("{base}/privacy/access?region=NL")).await;
        fill(&browser, "#email", &unique_address(lang)).await;
        send(&browser).await;
        browser.shown("#result").await;
        browser.assert_accessible(&format!("center-sent-{lang}")).await;
        browser.quit().await;
    }
}

#[tokio::test]
async fn a_keyboard_alone_goes_from_the_start_page_to_a_sent_request_and_always_sees_where_it_is() {
    let local = Local::new();
    let served = serve_intake(&local).await;
    let browser = Browser::open(Options::default()).await;
    browser.goto(&format!("{}/privacy?lang=en", served.base)).await;

    browser.tab_to("#region", 12).await;
    assert!(browser.focus_is_visible().await, "the region chooser shows its focus");
    // A closed select takes typed letters as a choice, as with a keyboard anywhere.
    type_text(&browser, "Neth").await;
    browser.tab_to("form.region button", 3).await;
    assert!(browser.focus_is_visible().await);
    browser.press_enter().await;
    browser.shown(".rights").await;
    assert_eq!(browser.script("return new URL(location.href).searchParams.get('region')").await, "NL");

    browser.tab_to(".rights a[href^='/privacy/access']", 20).await;
    assert!(browser.focus_is_visible().await, "a link shows its focus");
    browser.press_enter().await;
    browser.shown("#request-form").await;

    let address = unique_address("keyboard");
    browser.tab_to("#email", 20).await;
    assert!(browser.focus_is_visible().await, "a field shows its focus");
    type_text(&browser, &address).await;
    browser.tab_to("#request-form button[type=submit]", 10).await;
    assert!(browser.focus_is_visible().await, "the button shows its focus");
    browser.press_enter().await;
    browser.shown("#result").await;
    browser.quit().await;
    assert_eq!(local.mail_to(&address).await.len(), 1, "the request went in and its link went out");
}

#[tokio::test]
async fn with_javascript_off_the_form_still_sends_and_names_its_problems() {
    let local = Local::new();
    let served = serve_intake(&local).await;
    let browser = Browser::open(Options::preferring("nl-NL,nl").without_javascript()).await;
    assert_eq!(browser.script("return 1").await, 1, "WebDriver still runs its own scripts");
    browser.goto(&format!("{}/privacy/objection?region=NL", served.base)).await;
    fill(&browser, "#email", "iemand@voorbeeld.nl").await;
    send(&browser).await;
    let problem = browser.shown("#details-error").await;
    assert_eq!(problem, "Dit is verplicht.");
    assert_eq!(
        browser.client.find(Locator::Css("#email")).await.unwrap().prop("value").await.unwrap().as_deref(),
        Some("iemand@voorbeeld.nl"),
        "what was typed stays"
    );
    browser.screenshot("center-form-problems-nojs-nl").await;

    fill(&browser, "#details", "Geen profilering voor marketing, alstublieft.").await;
    send(&browser).await;
    assert!(browser.shown("#result").await.contains("Kijk in uw mailbox"));
    browser.quit().await;
    let mails = local.mail_to("iemand@voorbeeld.nl").await;
    assert_eq!(mails.len(), 1);
    let (id, _) = link_parts(&mails[0]);
    let record = local.store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(record.details.as_deref(), Some("Geen profilering voor marketing, alstublieft."));
}

#[tokio::test]
async fn a_browser_sending_global_privacy_control_is_told_its_signal_is_honoured_with_or_without_javascript()
{
    let local = Local::new();
    let served = serve_intake(&local).await;
    for options in [Options::default(), Options::default().without_javascript()] {
        let javascript = options.javascript;
        let browser = Browser::open(options.with_global_privacy_control()).await;
        browser.goto(&format!("{}/privacy?region=US-CA", served.base)).await;
        assert!(browser.shown("#gpc").await.contains("opt-out honoured"), "javascript: {javascript}");
        if javascript {
            browser.assert_accessible("center-gpc-en").await;
        }
        browser.quit().await;
    }
    let plain = Browser::open(Options::default()).await;
    plain.goto(&format!("{}/privacy?region=US-CA", served.base)).await;
    plain.shown(".rights").await;
    assert!(!plain.is_displayed("#gpc").await, "no signal, no notice");
    plain.quit().await;
}

#[tokio::test]
async fn an_agent_asks_for_someone_else_and_the_link_goes_to_that_person() {
    let local = Local::new();
    let served = serve_intake(&local).await;
    let browser = Browser::open(Options::default()).await;
    browser.goto(&format!("{}/privacy/access?region=US-CA", served.base)).await;
    browser
        .client
        .find(Locator::LinkText("I am asking for someone else"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.shown("#agent_name").await;
    let (person, agent) = (unique_address("represented"), unique_address("agent"));
    fill(&browser, "#agent_name", "Agatha Agent").await;
    fill(&browser, "#agent_email", &agent).await;
    choose(&browser, "#agent_relationship", "authorised_agent").await;
    fill(&browser, "#email", &person).await;
    send(&browser).await;
    assert!(browser.shown("#result").await.contains("Check your mailbox"));
    assert!(browser.text("main").await.contains("sent the confirmation link to the person"));
    browser.quit().await;
    assert_eq!(local.mail_to(&person).await.len(), 1);
    let to_agent = local.mailer.sent_to(&agent);
    assert_eq!(to_agent.len(), 1, "the agent is told, with a link of their own");
    assert!(!to_agent[0].text.contains("/verify") && to_agent[0].text.contains("/status?lang=en#"));
}
