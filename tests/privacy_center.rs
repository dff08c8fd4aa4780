//! The privacy center's pages that lead to a request (intake's start page and forms), through the
//! real handler over the in-memory stack: what each page offers where, the form with JavaScript
//! off (a plain form POST answered with a page), its errors in the page's language next to their
//! fields, the agent path, Global Privacy Control, and the headers and weight of every page.
//! The same pages in a real browser, with axe, are in `privacy_center_browser`.

use lambda_http::{Body, Request, RequestExt, Response};
use std::collections::HashMap;

use crate::support::*;
use privacy_shared::domain::{Relationship, RequestId, RequestKind, Status};
use privacy_shared::store::{People, Requests};

const FORM: &str = "application/x-www-form-urlencoded";

fn page(path_and_query: &str, headers: &[(&str, &str)]) -> Request {
    let mut request = http("GET", path_and_query, None, Body::Empty);
    for (name, value) in headers {
        request.headers_mut().insert(
            lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let query: HashMap<String, String> = path_and_query
        .split_once('?')
        .map(|(_, q)| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    request.with_query_string_parameters(query)
}

fn form_post(path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Request {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut request = http("POST", path, Some(FORM), Body::Text(body));
    for (name, value) in headers {
        request.headers_mut().insert(
            lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

fn html(response: &Response<Body>) -> String {
    String::from_utf8(response.body().to_vec()).unwrap()
}

async fn open(local: &Local, request: Request) -> (u16, String, Response<Body>) {
    let response = intake::handle(&local.deps(), request).await.unwrap();
    (response.status().as_u16(), html(&response), response)
}

fn assert_page_headers(response: &Response<Body>) {
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let policy = header("content-security-policy").expect("a CSP");
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline") && !policy.contains("http"), "{policy}");
    assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    assert!(response.body().len() < 50 * 1024, "a page weighs {} bytes", response.body().len());
}

#[tokio::test]
async fn the_start_page_speaks_the_browsers_language_unless_told_and_links_the_other() {
    let local = Local::new();
    let (status, english, response) = open(&local, page("/privacy", &[])).await;
    assert_eq!(status, 200);
    assert_page_headers(&response);
    assert!(english.contains(r#"<html lang="en">"#) && english.contains("Your privacy rights"));
    assert!(english.contains(r#"href="/privacy?lang=nl""#), "a link to the Dutch page");

    let (_, dutch, _) = open(&local, page("/", &[("accept-language", "nl-NL,nl;q=0.9,en;q=0.5")])).await;
    assert!(dutch.contains(r#"<html lang="nl">"#) && dutch.contains("Uw privacyrechten"));
    let (_, told, _) = open(&local, page("/privacy?lang=en", &[("accept-language", "nl")])).await;
    assert!(told.contains(r#"<html lang="en">"#));
}

#[tokio::test]
async fn the_start_page_offers_the_rights_of_where_the_person_lives_with_their_deadline() {
    let local = Local::new();
    let (_, california, _) = open(&local, page("/privacy?region=US-CA&lang=en", &[])).await;
    assert!(
        california.contains(r#"href="/privacy/opt_out_of_sale?lang=en&amp;region=US-CA""#),
        "{california}"
    );
    assert!(california.contains("CCPA") && california.contains("45 days"));
    // Received on Saturday 28 November 2026: 45 calendar days.
    assert!(california.contains("12 January 2027"), "the CCPA due date for a request made today");

    let (_, dutch, _) = open(&local, page("/privacy?region=NL&lang=nl", &[])).await;
    let listed = |page: &str| {
        page.split(r#"<ul class="rights">"#).nth(1).unwrap().split("</ul>").next().unwrap().to_owned()
    };
    assert!(listed(&california).contains("/privacy/opt_out_of_sale"));
    assert!(!listed(&dutch).contains("/privacy/opt_out_of_sale"), "no opt-out of sale under the GDPR");
    assert!(dutch.contains("/privacy/restriction?lang=nl&amp;region=NL"));
    assert!(dutch.contains("AVG") && dutch.contains("28 december 2026"), "one month, in Dutch");
    assert!(dutch.contains(r#"<option value="NL" selected>Nederland</option>"#));

    let (_, unknown, _) = open(&local, page("/privacy?region=XX", &[])).await;
    assert!(!unknown.contains("class=\"rights\""), "no rights listed for an unknown region");
}

#[tokio::test]
async fn each_right_asks_only_what_it_needs() {
    let local = Local::new();
    let form = |kind: &'static str| {
        page(Box::leak(format!("/privacy/{kind}?region=NL&lang=en").into_boxed_str()), &[])
    };
    let (_, access, response) = open(&local, form("access")).await;
    assert_page_headers(&response);
    assert!(access.contains(r#"name="email""#) && access.contains(r#"name="name""#));
    assert!(!access.contains(r#"name="recipient""#) && !access.contains("correction_"));
    let (_, portability, _) = open(&local, form("portability")).await;
    assert!(portability.contains(r#"name="recipient""#));
    let (_, rectification, _) = open(&local, form("rectification")).await;
    assert!(rectification.contains(r#"name="correction_job_title""#) && rectification.contains("Job title"));
    let (_, objection, _) = open(&local, form("objection")).await;
    assert!(objection.contains(r#"<textarea id="details" name="details" required"#));
    let (_, unsubscribe, _) = open(&local, form("unsubscribe")).await;
    assert!(!unsubscribe.contains(r#"name="details""#));
    let (status, _, _) = open(&local, page("/privacy/forget-me", &[])).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_form_sent_without_javascript_submits_the_request_and_says_what_happens_next() {
    let local = Local::new();
    let address = unique_address("form");
    let (status, answer, response) = open(
        &local,
        form_post(
            "/privacy/access",
            &[
                ("lang", "nl"),
                ("region", "NL"),
                ("email", &address),
                ("name", "Jo de Vries"),
                ("details", ""),
            ],
            &[("sec-fetch-site", "same-origin")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_page_headers(&response);
    assert!(answer.contains("Kijk in uw mailbox"), "{answer}");
    let mails = local.mail_to(&address).await;
    assert_eq!(mails.len(), 1, "the verification email");
    let (id, _) = link_parts(&mails[0]);
    let record = local.store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!((record.kind, record.status), (RequestKind::Access, Status::PendingVerification));
    assert_eq!(record.language.as_str(), "nl", "the page's language is the request's");
    assert_eq!(record.name.as_deref(), Some("Jo de Vries"));
}

#[tokio::test]
async fn a_refused_form_names_each_problem_next_to_its_field_in_the_pages_language_and_keeps_what_was_typed()
{
    let local = Local::new();
    let (status, page, _) = open(
        &local,
        form_post(
            "/privacy/portability",
            &[
                ("lang", "nl"),
                ("region", "NL"),
                ("email", "niet-een-adres"),
                ("name", "Jo"),
                ("recipient", "ook niet"),
            ],
            &[],
        ),
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains(r#"<p class="error" id="email-error">Vul een e-mailadres in"#), "{page}");
    assert!(page.contains(r#"id="email" name="email" type="email" value="niet-een-adres""#), "kept: {page}");
    assert!(page.contains(r#"aria-invalid="true" aria-describedby="email-hint email-error""#));
    assert!(page.contains(r##"<a href="#recipient">"##), "the summary links the field");
    assert!(page.contains(r#"value="Jo""#));
    assert!(local.mailer.sent().is_empty(), "nothing sent");

    let (status, objection, _) = open(
        &local,
        form_post("/privacy/objection", &[("lang", "en"), ("region", "DE"), ("email", "a@example.org")], &[]),
    )
    .await;
    assert_eq!(status, 422, "an objection needs its reasons");
    assert!(objection.contains(r#"<p class="error" id="details-error">This is required."#));
}

#[tokio::test]
async fn a_californian_may_ask_on_the_form_for_a_shorter_period_and_anyone_else_is_told_it_is_not_theirs() {
    let local = Local::new();
    let (_, access, _) = open(&local, page("/privacy/access?region=US-CA&lang=en", &[])).await;
    assert!(access.contains(r#"name="period_from" type="date""#), "{access}");
    let (_, deletion, _) = open(&local, page("/privacy/deletion?region=US-CA&lang=en", &[])).await;
    assert!(!deletion.contains(r#"name="period_from""#), "only a request to know covers a period");

    let address = unique_address("period-form");
    let fields =
        [("lang", "en"), ("region", "US-CA"), ("email", address.as_str()), ("period_from", "2025-06-01")];
    let same_site = [("sec-fetch-site", "same-origin")];
    let (status, answer, _) = open(&local, form_post("/privacy/access", &fields, &same_site)).await;
    assert_eq!(status, 200, "{answer}");
    let (id, _) = link_parts(&local.mail_to(&address).await[0]);
    let record = local.store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(record.period_from, chrono::NaiveDate::from_ymd_opt(2025, 6, 1));

    let dutch = [("lang", "nl"), ("region", "NL"), ("email", "jo@example.nl"), ("period_from", "2025-06-01")];
    let (status, refused, _) = open(&local, form_post("/privacy/access", &dutch, &same_site)).await;
    assert_eq!(status, 422);
    assert!(
        refused
            .contains(r#"id="period_from-error">Een kortere periode is alleen voor inwoners van Californië"#),
        "{refused}"
    );
    let early =
        [("lang", "en"), ("region", "US-CA"), ("email", "jo@example.org"), ("period_from", "2021-12-31")];
    let (status, refused, _) = open(&local, form_post("/privacy/access", &early, &same_site)).await;
    assert_eq!(status, 422);
    assert!(
        refused.contains(r#"id="period_from-error">Enter a date on or after 1 January 2022."#),
        "{refused}"
    );
}

#[tokio::test]
async fn a_form_from_another_site_is_refused_and_nothing_is_stored_or_sent() {
    let local = Local::new();
    let address = unique_address("forged");
    let (status, body, _) = open(
        &local,
        form_post(
            "/privacy/deletion",
            &[("lang", "en"), ("region", "NL"), ("email", &address)],
            &[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")],
        ),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("cross_site"));
    assert!(local.mailer.sent().is_empty());
    let (status, _, _) = open(
        &local,
        form_post(
            "/privacy/deletion",
            &[("lang", "en"), ("region", "NL"), ("email", &address), ("admin", "1")],
            &[],
        ),
    )
    .await;
    assert_eq!(status, 422, "an unknown field is refused, as in the JSON API");
}

#[tokio::test]
async fn an_agents_request_is_the_persons_the_link_goes_to_them_and_the_agent_is_stored() {
    let local = Local::new();
    let (person, agent) = (unique_address("person"), unique_address("agent"));
    let (_, form, _) = open(&local, page("/privacy/deletion?lang=en&region=US-CA&for=someone", &[])).await;
    assert!(form.contains(r#"name="agent_relationship""#) && form.contains("Email address of the person"));
    assert!(form.contains("Where does the person live?"), "the regime is the person's");
    let (status, answer, _) = open(
        &local,
        form_post(
            "/privacy/deletion",
            &[
                ("lang", "en"),
                ("for", "someone"),
                ("agent_name", "Agatha Agent"),
                ("agent_email", &agent),
                ("agent_relationship", "authorised_agent"),
                ("region", "US-CA"),
                ("email", &person),
            ],
            &[],
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("sent the confirmation link to the person the request is about"));
    let to_person = local.mail_to(&person).await;
    assert_eq!(to_person.len(), 1, "the verification goes to the person");
    assert!(
        to_person[0].body.contains("This request was made for you by Agatha Agent"),
        "the person knows who asked, and what confirming lets them see, before confirming"
    );
    let text = local.mailer.sent_to(&person).pop().unwrap().text;
    assert!(text.contains("who says they are your authorised agent"), "{text}");
    let to_agent = local.mailer.sent_to(&agent);
    assert_eq!(to_agent.len(), 1, "the agent is told the request came in");
    assert!(!to_agent[0].text.contains("/verify"), "never a confirmation link to the agent");
    assert!(to_agent[0].text.contains(&format!("{PUBLIC_BASE_URL}/status?lang=en#")), "{}", to_agent[0].text);
    let (id, _) = link_parts(&to_person[0]);
    let record = local.store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
    let stored = record.agent.expect("the agent is stored on the request");
    assert_eq!((stored.email.as_str(), stored.relationship), (agent.as_str(), Relationship::AuthorisedAgent));
    assert_eq!(record.email.as_str(), person);
}

#[tokio::test]
async fn a_global_privacy_control_signal_is_shown_as_honoured_and_an_opt_out_needs_no_verification() {
    let local = Local::new();
    let (_, without, _) = open(&local, page("/privacy?region=US-CA", &[])).await;
    assert!(without.contains(r#"id="gpc" class="notice" aria-labelledby="gpc-heading" hidden"#));
    let (_, with, response) = open(&local, page("/privacy?region=US-CA", &[("sec-gpc", "1")])).await;
    assert!(with.contains(r#"id="gpc" class="notice" aria-labelledby="gpc-heading">"#), "{with}");
    assert!(with.contains("opt-out honoured"));
    assert!(response.headers()["vary"].to_str().unwrap().contains("Sec-GPC"));

    let address = unique_address("gpc");
    let (status, done, _) = open(
        &local,
        form_post(
            "/privacy/opt_out_of_sale",
            &[("lang", "en"), ("region", "US-CA"), ("email", &address)],
            &[("sec-gpc", "1")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Your opt-out is recorded"));
    let subject = privacy_shared::domain::EmailAddress::parse(&address).unwrap().subject_key();
    let suppressed = local.store.suppressions(&subject).await.unwrap();
    assert_eq!(suppressed.len(), 1, "recorded at once, without verification");

    let (status, resource, response) = open(&local, page("/.well-known/gpc.json", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&resource).unwrap()["gpc"], true);
}

#[tokio::test]
async fn a_page_route_refuses_other_methods_and_the_json_api_is_unchanged() {
    let local = Local::new();
    let (status, _, _) = open(&local, http("DELETE", "/privacy", None, Body::Empty)).await;
    assert_eq!(status, 405);
    let (status, _) = submit(&local.deps(), &submission(&unique_address("json"), "access", "NL")).await;
    assert_eq!(status, 202);
}
