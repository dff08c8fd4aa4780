//! "Where is my request": the status link in the emails, the JSON route behind it, the page (with
//! and without JavaScript) and its download button, through the real download handler against the
//! emulator's table and bucket.

use chrono::{Duration, NaiveDate};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

use privacy_shared::Clock;
use privacy_shared::domain::{
    Actor, Audience, Completion, Event, RequestId, StaffText, Transition, VerificationToken, export_key,
};
use privacy_shared::pages;
use privacy_shared::store::{Change, DownloadToken, DynamoStore, TokenSlot};

use crate::support::*;

struct World {
    stack: Stack,
    downloads: download::Downloads<DynamoStore>,
}

async fn world() -> World {
    let stack = Stack::new().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("s{}-exports", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let downloads = download::Downloads {
        store: stack.deps().store,
        s3,
        bucket,
        clock: stack.clock.clone(),
        status: download::StatusPages::from_config(&stack.config()),
    };
    World { stack, downloads }
}

impl World {
    async fn handle(&self, request: Request) -> Response<Body> {
        download::handle(&self.downloads, request).await.unwrap()
    }

    /// Submits a request; returns its id and the status link's token from the verification mail.
    async fn submitted(&self, address: &str, kind: &str) -> (RequestId, String) {
        let (status, _) = submit(&self.stack.deps(), &submission(address, kind, "NL")).await;
        assert_eq!(status, 202);
        let mail = self.stack.mail_to(address).await.pop().expect("a verification email");
        let link = mail
            .links()
            .into_iter()
            .find(|l| l.starts_with(&format!("{PUBLIC_BASE_URL}/status?lang=nl#")))
            .expect("the verification email links to the status page");
        let (id, token) = link.split_once('#').unwrap().1.split_once('.').unwrap();
        (RequestId::parse(id).unwrap(), token.to_owned())
    }

    async fn verified(&self, address: &str, kind: &str) -> (RequestId, String) {
        let (id, token) = self.submitted(address, kind).await;
        let mail = self.stack.mail_to(address).await.pop().unwrap();
        let (_, code) = link_parts(&mail);
        assert_eq!(verify_with(&self.stack.verifier(), &id.to_string(), &code).await.0, 200);
        (id, token)
    }

    async fn change(&self, id: RequestId, transition: Transition, actor: Actor) {
        let store = &self.downloads.store;
        let current = store.get(id).await.unwrap().unwrap();
        store.transition(&current, Change::new(transition, self.stack.clock.now(), actor)).await.unwrap();
    }

    /// Completes an access request with its export in the bucket (in `parts`, or whole) and the
    /// download links issued, as the export worker and dispatch leave it.
    async fn exported(&self, address: &str, parts: Option<u32>) -> (RequestId, String) {
        let (id, token) = self.verified(address, "access").await;
        self.change(id, Transition::StartWork, Actor::System).await;
        let completion = match parts {
            None => Completion::Exported { found: 1 },
            Some(parts) => Completion::ExportedInParts { parts, found: 1 },
        };
        self.change(id, Transition::Complete(completion), Actor::System).await;
        let record = self.downloads.store.get(id).await.unwrap().unwrap();
        let keys: Vec<String> = match parts {
            None => vec![export_key(id, None)],
            Some(of) => (1..=of).map(|n| export_key(id, record.export_part(Some(n)).unwrap())).collect(),
        };
        for key in keys {
            let body = aws_sdk_s3::primitives::ByteStream::from_static(b"PK zip");
            self.downloads
                .s3
                .put_object()
                .bucket(&self.downloads.bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .unwrap();
        }
        let expires_at = record.updated_at + Duration::days(30);
        let link = DownloadToken { token_hash: VerificationToken::generate().hash(), expires_at };
        self.downloads.store.put_download_token(id, TokenSlot::Requester, &link).await.unwrap();
        (id, token)
    }

    fn agent_token(&self, id: RequestId) -> String {
        self.stack.config().status_links.token(id, Audience::Agent).expose_secret().to_owned()
    }
}

fn status_request(id: &str, body: &str) -> Request {
    post_json(&format!("/requests/{id}/status"), body)
        .with_path_parameters(HashMap::from([("id".to_owned(), id.to_owned())]))
}

async fn status_of(world: &World, id: RequestId, token: &str) -> (u16, Value) {
    let response = world.handle(status_request(&id.to_string(), &token_body(token))).await;
    (response.status().as_u16(), json_of(&response))
}

/// A browser's form POST from our own page (`Sec-Fetch-Site: same-origin`) unless `site` says.
fn form(path: &str, body: &str, site: &str) -> Request {
    let query: HashMap<String, String> = path
        .split_once('?')
        .map(|(_, q)| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
        })
        .unwrap_or_default();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example.test{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .body(Body::Text(body.to_owned()))
        .unwrap()
        .with_query_string_parameters(query)
}

fn download_form(id: RequestId, body: &str, site: &str) -> Request {
    form(&format!("/requests/{id}/download"), body, site)
        .with_path_parameters(HashMap::from([("id".to_owned(), id.to_string())]))
}

fn html(response: &Response<Body>) -> String {
    String::from_utf8(response.body().to_vec()).unwrap()
}

/// Validates `body` against the public API document's `StatusAnswer`.
fn assert_documented_answer(body: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.yaml");
    let mut doc: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc.as_object_mut().unwrap().insert("$ref".into(), json!("#/components/schemas/StatusAnswer"));
    let validator = jsonschema::options().should_validate_formats(true).build(&doc).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{body} does not match StatusAnswer: {errors:?}");
}

#[tokio::test]
async fn the_verification_emails_status_link_shows_a_pending_request_and_asks_to_confirm_it() {
    let world = world().await;
    let (id, token) = world.submitted(&unique_address("pending"), "deletion").await;
    let (status, body) = status_of(&world, id, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_documented_answer(&body);
    assert_eq!(body["request_id"], id.to_string());
    assert_eq!(body["audience"], "requester");
    assert_eq!(body["kind"], "deletion");
    assert_eq!(body["status"], "pending_verification");
    assert_eq!(body["expected"], "confirm");
    assert_eq!(body["received_on"], "2026-11-28");
    assert!(body.get("extended").is_none() && body.get("download").is_none(), "{body}");
}

#[tokio::test]
async fn an_extended_request_shows_its_new_due_date_and_the_reason() {
    let world = world().await;
    let (id, token) = world.verified(&unique_address("extended"), "access").await;
    let (_, before) = status_of(&world, id, &token).await;
    assert_eq!((before["status"].as_str(), before["expected"].as_str()), (Some("verified"), Some("nothing")));
    let until = NaiveDate::from_ymd_opt(2027, 2, 26).unwrap();
    let reason = StaffText::parse("Your data is spread over three systems.").unwrap();
    world
        .change(id, Transition::Extend { until, reason }, Actor::Staff("arn:aws:iam::1:user/p".into()))
        .await;

    let (status, body) = status_of(&world, id, &token).await;
    assert_eq!(status, 200);
    assert_documented_answer(&body);
    assert_eq!(body["due_on"], "2027-02-26");
    assert_eq!(
        body["extended"],
        json!({"until": "2027-02-26", "reason": "Your data is spread over three systems."})
    );
    assert_eq!(body["status"], "verified");
}

#[tokio::test]
async fn a_completed_export_offers_its_download_to_the_requester_and_never_to_the_agent() {
    let world = world().await;
    let (id, token) = world.exported(&unique_address("exported"), Some(3)).await;
    let (status, body) = status_of(&world, id, &token).await;
    assert_eq!(status, 200);
    assert_documented_answer(&body);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["expected"], "download");
    // 30 days after completion (28 November 10:00 in Amsterdam): the date the email gives.
    assert_eq!(body["download"], json!({"parts": 3, "available_until": "2026-12-28"}));

    let (status, agent) = status_of(&world, id, &world.agent_token(id)).await;
    assert_eq!(status, 200);
    assert_documented_answer(&agent);
    assert_eq!(agent["audience"], "agent");
    assert_eq!(agent["status"], "completed");
    assert!(agent.get("download").is_none(), "the agent never gets the person's data: {agent}");
    assert_eq!(agent["expected"], "nothing");

    // Past its end the export is no longer offered.
    world.stack.clock.advance(Duration::days(31));
    let (_, later) = status_of(&world, id, &token).await;
    assert!(later.get("download").is_none(), "{later}");
}

#[tokio::test]
async fn a_wrong_token_another_requests_token_and_an_unknown_request_get_one_answer() {
    let world = world().await;
    let (id, token) = world.submitted(&unique_address("mine"), "access").await;
    let (other, other_token) = world.submitted(&unique_address("theirs"), "access").await;
    let stranger = RequestId::generate();
    let forged = world.stack.config().status_links.token(stranger, Audience::Requester);
    let mut answers = Vec::new();
    for (id, token) in [
        (id, VerificationToken::generate().expose_secret().to_owned()),
        (id, other_token.clone()),
        (other, token.clone()),
        (id, String::new()),
        (id, format!("{token}x")),
        (stranger, forged.expose_secret().to_owned()),
        (stranger, token.clone()),
    ] {
        answers.push(status_of(&world, id, &token).await);
    }
    for answer in &answers {
        assert_eq!(answer, &answers[0]);
    }
    assert_eq!(answers[0].0, 404);
    assert_eq!(answers[0].1["error"]["code"], "status_unavailable");
    // Still open to its own link afterwards: wrong tries lock nobody out.
    assert_eq!(status_of(&world, id, &token).await.0, 200);
}

#[tokio::test]
async fn bad_bodies_get_the_apis_usual_answers() {
    let world = world().await;
    let id = RequestId::generate().to_string();
    let cases = [
        (status_request(&id, "{\"token\": 5}"), 422),
        (status_request(&id, "{\"token\": \"a\", \"id\": 1}"), 422),
        (status_request(&id, "not json"), 400),
        (status_request("not-an-id", "{\"token\": \"a\"}"), 404),
        (http("POST", &format!("/requests/{id}/status"), Some("text/plain"), Body::Text("x".into())), 415),
        (http("GET", &format!("/requests/{id}/status"), None, Body::Empty), 405),
        (form("/status", "reference=a&code=b&extra=1", "same-origin"), 422),
        (download_form(RequestId::parse(&id).unwrap(), "token=a&extra=1", "same-origin"), 422),
        (download_form(RequestId::parse(&id).unwrap(), "token=a&token=b", "same-origin"), 400),
    ];
    for (request, expected) in cases {
        let response = world.handle(request).await;
        assert_eq!(response.status().as_u16(), expected, "{}", html(&response));
        assert!(json_of(&response)["error"]["code"].is_string());
    }
}

#[tokio::test]
async fn the_download_button_redirects_the_requester_and_refuses_everyone_else_alike() {
    let world = world().await;
    let (id, token) = world.exported(&unique_address("button"), None).await;
    let (other, other_token) = world.exported(&unique_address("button-other"), None).await;

    let response = world.handle(download_form(id, &format!("token={token}"), "same-origin")).await;
    assert_eq!(response.status(), 303, "{}", html(&response));
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.contains(&format!("/{}/exports/{id}/export.zip", world.downloads.bucket)), "{location}");
    assert!(location.contains("X-Amz-Expires=900"), "{location}");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let trail = world.downloads.store.audit_trail(id).await.unwrap();
    assert_eq!(trail.iter().filter(|e| e.event == Event::Downloaded).count(), 1);
    assert_eq!(trail.last().unwrap().actor, Actor::Requester);

    let mut refusals = Vec::new();
    for body in [
        format!("token={}", world.agent_token(id)),
        format!("token={other_token}"),
        format!("token={}", VerificationToken::generate().expose_secret()),
        String::new(),
    ] {
        let response = world.handle(download_form(id, &body, "same-origin")).await;
        refusals.push((response.status().as_u16(), json_of(&response)));
    }
    let unknown = RequestId::generate();
    let forged = world.stack.config().status_links.token(unknown, Audience::Requester);
    let response = world
        .handle(download_form(unknown, &format!("token={}", forged.expose_secret()), "same-origin"))
        .await;
    refusals.push((response.status().as_u16(), json_of(&response)));
    for refusal in &refusals {
        assert_eq!(refusal, &refusals[0]);
    }
    assert_eq!(refusals[0].0, 403);
    assert_eq!(refusals[0].1["error"]["code"], "download_refused");
    let trail = world.downloads.store.audit_trail(other).await.unwrap();
    assert!(trail.iter().all(|e| e.event != Event::Downloaded), "nothing of theirs was downloaded");

    let cross = world.handle(download_form(id, &format!("token={token}"), "cross-site")).await;
    assert_eq!(cross.status(), 403);
    assert_eq!(json_of(&cross)["error"]["code"], "cross_site");
}

#[tokio::test]
async fn the_download_button_of_an_export_in_parts_gives_the_part_asked_for() {
    let world = world().await;
    let (id, token) = world.exported(&unique_address("parts"), Some(2)).await;
    let response = world.handle(download_form(id, &format!("token={token}&part=2"), "same-origin")).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.contains(&format!("exports/{id}/export-part-02-of-02.zip")), "{location}");
    let missing = world.handle(download_form(id, &format!("token={token}&part=3"), "same-origin")).await;
    assert_eq!(
        (missing.status().as_u16(), json_of(&missing)["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let bad = world.handle(download_form(id, &format!("token={token}&part=01"), "same-origin")).await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn without_javascript_the_form_shows_the_status_in_words_with_its_download_buttons() {
    let world = world().await;
    let (id, token) = world.exported(&unique_address("nojs"), Some(2)).await;
    let response =
        world.handle(form("/status?lang=nl", &format!("reference={id}&code={token}"), "same-origin")).await;
    assert_eq!(response.status(), 200);
    let page = html(&response);
    assert!(page.contains("<html lang=\"nl\">"), "{page}");
    assert!(page.contains("Afgerond"), "the status in words: {page}");
    assert!(page.contains("28 november 2026"), "the date in words: {page}");
    assert!(page.contains("inzage in uw persoonsgegevens"), "{page}");
    assert!(page.contains("28 december 2026"), "until when: {page}");
    assert_eq!(page.matches(&format!("action=\"requests/{id}/download\"")).count(), 2, "one button per part");
    assert!(page.contains("Deel 2 van 2 downloaden"), "{page}");
    assert_eq!(page.matches(&format!("name=\"token\" value=\"{token}\"")).count(), 2);

    // The whole link pasted as the reference brings the code along.
    let link = format!("{PUBLIC_BASE_URL}/status?lang=en#{id}.{token}");
    let body = url::form_urlencoded::Serializer::new(String::new()).append_pair("reference", &link).finish();
    let pasted = world.handle(form("/status?lang=en", &body, "same-origin")).await;
    assert_eq!(pasted.status(), 200);
    assert!(html(&pasted).contains("Done"), "{}", html(&pasted));

    let wrong =
        world.handle(form("/status?lang=en", &format!("reference={id}&code=nope"), "same-origin")).await;
    assert_eq!(wrong.status(), 404);
    let wrong = html(&wrong);
    assert!(wrong.contains("We could not find a request with this reference and code."), "{wrong}");
    assert!(!wrong.contains("name=\"token\""), "no button without a valid code");
    let unknown = world.handle(form("/status", "reference=nothing-like-an-id&code=x", "same-origin")).await;
    assert_eq!(unknown.status(), 404);
    let empty = world.handle(form("/status", "reference=&code=", "same-origin")).await;
    assert_eq!(empty.status(), 422);
    assert!(html(&empty).contains("Please fill in the reference and the code."));

    // An agent's code shows the progress, with no button.
    let agent = format!("reference={id}&code={}", world.agent_token(id));
    let agent = html(&world.handle(form("/status?lang=en", &agent, "same-origin")).await);
    assert!(agent.contains("Done") && !agent.contains("name=\"token\""), "{agent}");
}

#[tokio::test]
async fn a_cross_site_form_is_refused_before_anything_is_read() {
    let world = world().await;
    let (id, token) = world.submitted(&unique_address("cross"), "access").await;
    let response = world.handle(form("/status", &format!("reference={id}&code={token}"), "cross-site")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json_of(&response)["error"]["code"], "cross_site");
    let foreign = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://privacy.example.test/status")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .header("host", "privacy.example.test")
        .body(Body::Text(format!("reference={id}&code={token}")))
        .unwrap();
    assert_eq!(world.handle(foreign).await.status(), 403);
}

#[tokio::test]
async fn the_page_is_small_strict_never_framed_and_leaks_no_referrer() {
    let world = world().await;
    let (id, token) = world.exported(&unique_address("page"), Some(12)).await;
    let empty = world.handle(http("GET", "/status", None, Body::Empty)).await;
    let answered =
        world.handle(form("/status", &format!("reference={id}&code={token}"), "same-origin")).await;
    for response in [&empty, &answered] {
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains(&pages::csp_hash(download::STATUS_SCRIPT)), "{policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");
        // Forms go to this site, and a download's redirect on to the export bucket only.
        let form_action = policy.split(';').find(|d| d.trim().starts_with("form-action")).unwrap();
        assert_eq!(form_action.split_whitespace().count(), 3, "{form_action}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        let page = html(response);
        assert!(page.len() < 50 * 1024, "{} bytes", page.len());
        assert!(!page.contains("http://") && !page.contains("https://"), "no other origin on the page");
        assert_eq!(page.matches("<script>").count(), 1, "one inline script, the hashed one");
    }
    let page = html(&empty);
    assert!(
        page.contains("<form id=\"lookup\" method=\"post\" action=\"status?lang=en\""),
        "works without JS"
    );
    assert!(page.contains("hreflang=\"nl\""), "switches language");
}

// ------------------------------------------------------------------ in a real browser

mod in_a_browser {
    use fantoccini::Locator;
    use serde_json::json;
    use std::sync::Arc;

    use super::{World, world};
    use crate::support::browser::{Browser, Options};
    use crate::support::http::{Served, serve};
    use crate::support::*;
    use privacy_shared::domain::Event;

    /// The download function (the page and its routes) over HTTP, in front of `world`'s store.
    async fn served(world: World) -> (Served, Arc<World>) {
        let world = Arc::new(world);
        let serving = world.clone();
        let served = serve(move |request| {
            let world = serving.clone();
            async move { world.handle(request).await }
        })
        .await;
        (served, world)
    }

    /// The status link of the newest mail to `address`, pointed at the served page.
    async fn emailed_status_link(world: &World, address: &str, served: &Served) -> String {
        let mail = world.stack.mail_to(address).await.pop().expect("a mail");
        let link = mail
            .links()
            .into_iter()
            .find(|l| l.starts_with(&format!("{PUBLIC_BASE_URL}/status?")))
            .expect("the mail links to the status page");
        link.replacen(PUBLIC_BASE_URL, &served.base, 1)
    }

    /// No refusal by the page's policy and no script error; the token never shows in the output.
    async fn assert_quiet_console(browser: &Browser) {
        let complaints: Vec<String> = browser
            .console()
            .await
            .iter()
            .filter(|e| {
                (e["level"] == "SEVERE" && e["source"] != "network")
                    || e["source"] == "security"
                    || e["message"].as_str().is_some_and(|m| m.contains("Content Security Policy"))
            })
            .map(|e| e["message"].as_str().unwrap_or_default().split('#').next().unwrap().to_owned())
            .collect();
        assert!(complaints.is_empty(), "the console reported: {complaints:#?}");
    }

    #[tokio::test]
    async fn the_emailed_link_shows_the_status_in_words_and_takes_the_code_out_of_the_address_bar() {
        let world = world().await;
        let address = unique_address("browser-pending");
        world.submitted(&address, "deletion").await;
        let (served, world) = served(world).await;
        let link = emailed_status_link(&world, &address, &served).await;
        let id = link.split_once('#').unwrap().1.split_once('.').unwrap().0.to_owned();
        let browser = Browser::open(Options::preferring("nl-NL,nl")).await;

        browser.goto(&link).await;
        browser.shown("#result:not([hidden])").await;
        assert_eq!(browser.text("#r-status").await, "Wacht op uw bevestiging");
        assert_eq!(browser.text("#r-kind").await, "verwijdering van uw persoonsgegevens");
        assert_eq!(browser.text("#r-received").await, "28 november 2026");
        assert!(browser.text("#r-expected").await.starts_with("Bevestig uw verzoek"));
        assert!(!browser.is_displayed("#lookup").await && !browser.is_displayed("#r-download").await);
        let address_bar = browser.client.current_url().await.unwrap();
        assert!(address_bar.fragment().is_none(), "{address_bar}");
        assert_eq!(served.posts(), [format!("/requests/{id}/status")]);
        assert_eq!(browser.script("return document.activeElement.id").await, json!("result-heading"));
        browser.assert_accessible("status-nl-pending").await;
        assert_quiet_console(&browser).await;
        browser.quit().await;
    }

    #[tokio::test]
    async fn an_export_in_parts_gets_a_button_per_part_and_a_button_downloads_its_part() {
        let world = world().await;
        let address = unique_address("browser-export");
        let (id, token) = world.exported(&address, Some(2)).await;
        let (served, world) = served(world).await;
        let browser = Browser::open(Options::default()).await;

        browser.goto(&format!("{}/status?lang=en#{id}.{token}", served.base)).await;
        browser.shown("#r-download:not([hidden])").await;
        assert_eq!(browser.text("#r-status").await, "Done");
        assert!(browser.text("#r-download-text").await.contains("28 December 2026"));
        let buttons = browser.client.find_all(Locator::Css("#r-buttons button")).await.unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[1].text().await.unwrap(), "Download part 2 of 2");
        browser.assert_accessible("status-en-export").await;

        buttons[1].click().await.unwrap();
        // The form posts, is audited and redirected to the bucket (which the policy allows).
        let mut downloaded = Vec::new();
        for _ in 0..100 {
            let trail = world.downloads.store.audit_trail(id).await.unwrap();
            downloaded = trail.into_iter().filter(|e| e.event == Event::Downloaded).collect();
            if !downloaded.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(served.posts(), [format!("/requests/{id}/status"), format!("/requests/{id}/download")]);
        assert_eq!(downloaded.len(), 1);
        assert_eq!(downloaded[0].reason.as_deref(), Some("part 2 of 2"));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_quiet_console(&browser).await;
        browser.quit().await;
    }

    #[tokio::test]
    async fn without_javascript_the_reference_and_code_show_the_same_status() {
        let world = world().await;
        let address = unique_address("browser-nojs");
        let (id, token) = world.verified(&address, "access").await;
        let (served, _world) = served(world).await;
        let browser = Browser::open(Options::default().without_javascript()).await;

        browser.goto(&format!("{}/status?lang=en#{id}.{token}", served.base)).await;
        assert!(browser.is_displayed("#lookup").await);
        browser.assert_accessible("status-en-nojs-form").await;
        browser
            .client
            .find(Locator::Id("reference"))
            .await
            .unwrap()
            .send_keys(&id.to_string())
            .await
            .unwrap();
        browser.client.find(Locator::Id("code")).await.unwrap().send_keys(&token).await.unwrap();
        browser.press_enter().await;
        browser.shown("#result:not([hidden])").await;
        assert_eq!(browser.text("#r-status").await, "Confirmed; we are working on it");
        assert_eq!(browser.text("#r-reference").await, id.to_string());
        assert_eq!(served.posts(), ["/status?lang=en"], "no script, no JSON route");
        assert!(!browser.text("body").await.contains(&token), "the code is never shown");
        browser.assert_accessible("status-en-nojs-answer").await;
        browser.quit().await;
    }
}
