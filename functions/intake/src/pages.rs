//! The privacy center's pages that lead to a request: the start page (which rights apply where
//! the person lives, and how long each may take), a form per right, and what happens after the
//! form is sent. Server-rendered, so they work with JavaScript off; the small script only adds
//! what a browser alone can tell (the Global Privacy Control signal) and guards double presses.
//!
//! A form POST goes through the same parsing and the same path as `POST /requests`; a refused
//! field is named next to itself in the page's language, and what was typed stays in the form.

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use minijinja::{Environment, Value, context};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use privacy_shared::Deps;
use privacy_shared::api::ApiError;
use privacy_shared::domain::{Language, Regime, Region, Relationship, RequestKind};
use privacy_shared::mail::Mailer;
use privacy_shared::mail::templates::long_date;
use privacy_shared::pages::{self, STYLE};
use privacy_shared::store::{People, Requests, Secrets};

use crate::{FieldError, RawAgent, RawSubmission, Submission};
use crate::{IntakeError, accept, client_network};
use privacy_shared::intake::correctable;

const SCRIPT: &str = include_str!("../templates/center.js");
const TEMPLATES: &[(&str, &str)] = &[
    ("start.html", include_str!("../templates/start.html")),
    ("regions.html", include_str!("../templates/regions.html")),
    ("form.html", include_str!("../templates/form.html")),
    ("sent.html", include_str!("../templates/sent.html")),
];

/// What `/.well-known/gpc.json` says: this site honours the signal (the GPC specification's
/// well-known resource).
const GPC_RESOURCE: &str = r#"{"gpc":true,"lastUpdate":"2026-12-03"}"#;

/// The EU and EEA countries, the United Kingdom and Switzerland, named in both languages.
const EUROPE: &[(&str, &str, &str)] = &[
    ("AT", "Austria", "Oostenrijk"),
    ("BE", "Belgium", "België"),
    ("BG", "Bulgaria", "Bulgarije"),
    ("HR", "Croatia", "Kroatië"),
    ("CY", "Cyprus", "Cyprus"),
    ("CZ", "Czechia", "Tsjechië"),
    ("DK", "Denmark", "Denemarken"),
    ("EE", "Estonia", "Estland"),
    ("FI", "Finland", "Finland"),
    ("FR", "France", "Frankrijk"),
    ("DE", "Germany", "Duitsland"),
    ("GR", "Greece", "Griekenland"),
    ("HU", "Hungary", "Hongarije"),
    ("IS", "Iceland", "IJsland"),
    ("IE", "Ireland", "Ierland"),
    ("IT", "Italy", "Italië"),
    ("LV", "Latvia", "Letland"),
    ("LI", "Liechtenstein", "Liechtenstein"),
    ("LT", "Lithuania", "Litouwen"),
    ("LU", "Luxembourg", "Luxemburg"),
    ("MT", "Malta", "Malta"),
    ("NL", "Netherlands", "Nederland"),
    ("NO", "Norway", "Noorwegen"),
    ("PL", "Poland", "Polen"),
    ("PT", "Portugal", "Portugal"),
    ("RO", "Romania", "Roemenië"),
    ("SK", "Slovakia", "Slowakije"),
    ("SI", "Slovenia", "Slovenië"),
    ("ES", "Spain", "Spanje"),
    ("SE", "Sweden", "Zweden"),
    ("CH", "Switzerland", "Zwitserland"),
    ("GB", "United Kingdom", "Verenigd Koninkrijk"),
];

/// The routes this function answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Start,
    Form(RequestKind),
    GpcResource,
    Requests,
    Unknown,
}

impl Route {
    pub(crate) fn of(path: &str) -> Route {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] | ["privacy"] => Route::Start,
            ["privacy", kind] => kind.parse().map(Route::Form).unwrap_or(Route::Unknown),
            [".well-known", "gpc.json"] => Route::GpcResource,
            ["requests"] => Route::Requests,
            _ => Route::Unknown,
        }
    }
}

/// The rights offered where a regime applies, in the order the start page lists them.
fn rights(regime: Regime) -> &'static [RequestKind] {
    use RequestKind::*;
    match regime {
        Regime::Gdpr => &[
            Access,
            Portability,
            Rectification,
            Deletion,
            Restriction,
            Objection,
            WithdrawConsent,
            Unsubscribe,
        ],
        // The CCPA's rights to know, delete, correct and opt out; the policy adds the rest to all.
        Regime::Ccpa => {
            &[Access, Portability, Rectification, Deletion, OptOutOfSale, WithdrawConsent, Unsubscribe]
        }
        Regime::Other => &RequestKind::ALL,
    }
}

/// A request of this kind is done the moment it is stored (no verification, no clock).
fn at_once(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::OptOutOfSale | RequestKind::Unsubscribe)
}

/// Where a form's free text is asked for, and whether the right needs it: staff must judge an
/// objection or a restriction, and a correction needs to say what.
fn details_field(kind: RequestKind) -> Option<(&'static str, bool)> {
    match kind {
        RequestKind::Objection => Some(("details_label_objection", true)),
        RequestKind::Restriction => Some(("details_label_restriction", true)),
        RequestKind::Rectification => Some(("details_label_rectification", false)),
        RequestKind::OptOutOfSale | RequestKind::Unsubscribe => None,
        _ => Some(("details_label", false)),
    }
}

/// The pages, their templates parsed once per process.
pub struct Pages {
    env: Environment<'static>,
    policy: HeaderValue,
}

impl Pages {
    pub fn get() -> &'static Pages {
        static PAGES: OnceLock<Pages> = OnceLock::new();
        PAGES.get_or_init(|| {
            let mut env = pages::environment();
            for (name, source) in TEMPLATES {
                env.add_template(name, source).expect("page template is valid");
            }
            Pages { env, policy: pages::content_security_policy(&[SCRIPT]) }
        })
    }

    fn render(&self, name: &str, status: StatusCode, ctx: Value) -> Response<Body> {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => pages::html_response(status, html, &self.policy),
            Err(err) => {
                tracing::error!(template = name, error = %err.kind(), "page did not render");
                ApiError::unavailable().into_response()
            }
        }
    }
}

/// A word of the pages, as text.
fn word(words: &Value, path: &[&str]) -> String {
    let mut value = words.clone();
    for key in path {
        value = value.get_attr(key).unwrap_or_default();
    }
    value.as_str().unwrap_or_default().to_owned()
}

/// What every page's layout needs.
fn base(request: &Request, language: Language) -> Value {
    context! {
        lang => language.as_str(),
        w => pages::words(language),
        css => Value::from_safe_string(STYLE.to_owned()),
        script => Value::from_safe_string(SCRIPT.to_owned()),
        switch => pages::switch_links(request, language),
    }
}

/// The region chooser's options in one language, built once per process: they never change.
fn regions(language: Language) -> Value {
    static BUILT: OnceLock<[Value; 2]> = OnceLock::new();
    let [en, nl] = BUILT
        .get_or_init(|| [Value::from(build_regions(Language::En)), Value::from(build_regions(Language::Nl))]);
    match language {
        Language::En => en.clone(),
        Language::Nl => nl.clone(),
    }
}

fn build_regions(language: Language) -> Vec<Value> {
    let words = pages::words(language);
    let europe: Vec<Value> = {
        let mut named: Vec<(&str, &str)> = EUROPE
            .iter()
            .map(|(code, en, nl)| (*code, if language == Language::Nl { *nl } else { *en }))
            .collect();
        named.sort_by(|a, b| a.1.cmp(b.1));
        named.into_iter().map(|(code, name)| context! { code, name }).collect()
    };
    let united_states = vec![
        context! { code => "US-CA", name => word(&words, &["start", "us_ca"]) },
        context! { code => "US", name => word(&words, &["start", "us_other"]) },
    ];
    // Everywhere else by its ISO name (English only: the Dutch names are not kept here).
    let mut elsewhere: Vec<(&str, &str)> = isocountry::CountryCode::iter()
        .map(|c| (c.alpha2(), c.name()))
        .filter(|(code, _)| *code != "US" && Region::parse(code).is_ok_and(|r| r.regime() == Regime::Other))
        .collect();
    elsewhere.sort_by(|a, b| a.1.cmp(b.1));
    vec![
        context! { label => word(&words, &["start", "europe"]), options => europe },
        context! { label => word(&words, &["start", "united_states"]), options => united_states },
        context! {
            label => word(&words, &["start", "elsewhere"]),
            options => elsewhere.into_iter().map(|(code, name)| context! { code, name }).collect::<Vec<_>>(),
        },
    ]
}

fn href(path: &str, pairs: &[(&str, &str)]) -> Value {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(name, value);
    }
    pages::href(&format!("{path}?{}", query.finish()))
}

/// How long a right may take under a regime, in words, for a request made now.
struct When {
    due: String,
    at_once: String,
}

impl When {
    fn now<S, M>(deps: &Deps<S, M>, regime: Regime, language: Language) -> When {
        let words = pages::words(language);
        let due = deps.config.calendar.deadlines(regime, deps.clock.now()).due_on;
        When {
            due: word(&words, &["start", "due"]).replace("{date}", &long_date(due, language)),
            at_once: word(&words, &["start", "at_once"]),
        }
    }

    fn of(&self, kind: RequestKind) -> &str {
        if at_once(kind) { &self.at_once } else { &self.due }
    }
}

/// `GET /privacy`: the rights that apply where the person lives.
pub(crate) fn start<S, M>(deps: &Deps<S, M>, request: &Request) -> Response<Body> {
    let language = pages::page_language(request);
    let words = pages::words(language);
    let region = pages::query(request, "region").and_then(|r| Region::parse(&r).ok());
    let code = region.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
    let (rights, regime_text) = match &region {
        None => (Vec::new(), String::new()),
        Some(region) => {
            let regime = region.regime();
            let when = When::now(deps, regime, language);
            let listed = rights(regime)
                .iter()
                .map(|kind| {
                    context! {
                        kind => kind.as_str(),
                        href => href(&format!("/privacy/{}", kind.as_str()), &[("lang", language.as_str()), ("region", &code)]),
                        when => when.of(*kind),
                    }
                })
                .collect();
            (listed, word(&words, &["start", &format!("regime_{}", regime.as_str())]))
        }
    };
    let ctx = context! {
        ..base(request, language),
        ..context! {
            gpc => pages::sends_gpc(request),
            opt_out_href => href("/privacy/opt_out_of_sale", &[("lang", language.as_str()), ("region", &code)]),
            regions => regions(language),
            region => code,
            rights,
            regime_text,
            errors => BTreeMap::<String, String>::new(),
        }
    };
    Pages::get().render("start.html", StatusCode::OK, ctx)
}

/// A form as shown: what was typed, and what is wrong with it.
#[derive(Default)]
struct Filled {
    values: BTreeMap<String, String>,
    problems: Vec<FieldError>,
    unavailable: bool,
}

/// The form field a problem concerns (the JSON API's name for it differs).
fn field_id(field: &str) -> String {
    match field {
        "agent.name" => "agent_name".to_owned(),
        "agent.email" => "agent_email".to_owned(),
        "agent.relationship" => "agent_relationship".to_owned(),
        "corrections" => {
            correctable().first().map(|f| format!("correction_{f}")).unwrap_or_else(|| "details".into())
        }
        other => match other.strip_prefix("corrections.") {
            Some(attribute) => format!("correction_{attribute}"),
            None => other.to_owned(),
        },
    }
}

/// The label of a form field, for the list of problems above the form.
fn field_label(words: &Value, id: &str, kind: RequestKind, agent: bool) -> String {
    let key = match id {
        "email" if agent => "email_label_agent",
        "email" => "email_label",
        "name" if agent => "name_label_agent",
        "name" => "name_label",
        "region" if agent => "region_label_agent",
        "region" => "region_label",
        "recipient" => "recipient_label",
        "period_from" => "period_label",
        "details" => details_field(kind).map(|(label, _)| label).unwrap_or("details_label"),
        "agent_name" => "agent_name_label",
        "agent_email" => "agent_email_label",
        "agent_relationship" => "agent_relationship_label",
        other => match other.strip_prefix("correction_") {
            Some(attribute) => return correction_label(words, attribute),
            None => "submit",
        },
    };
    word(words, &["form", key])
}

fn correction_label(words: &Value, attribute: &str) -> String {
    let label = word(words, &["form", "fields", attribute]);
    if label.is_empty() { attribute.replace('_', " ") } else { label }
}

fn form_page<S, M>(
    deps: &Deps<S, M>,
    request: &Request,
    kind: RequestKind,
    language: Language,
    agent: bool,
    filled: Filled,
    status: StatusCode,
) -> Response<Body> {
    let words = pages::words(language);
    let region = filled
        .values
        .get("region")
        .cloned()
        .or_else(|| pages::query(request, "region"))
        .and_then(|r| Region::parse(&r).ok());
    let code = region.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
    let mut errors = BTreeMap::new();
    let mut problems = Vec::new();
    for problem in &filled.problems {
        let id = field_id(&problem.field);
        let (key, max) = problem.problem.words_key();
        let mut message = word(&words, &["form", "errors", key]);
        if let Some(max) = max {
            message = message.replace("{max}", &max.to_string());
        }
        problems.push(context! { id => id.clone(), label => field_label(&words, &id, kind, agent), message => message.clone() });
        errors.entry(id).or_insert(message);
    }
    let (details_label, details_required) = match details_field(kind) {
        Some((label, required)) => (word(&words, &["form", label]), required),
        None => (String::new(), false),
    };
    let lang = language.as_str();
    let path = format!("/privacy/{}", kind.as_str());
    let switch_agent_href = if agent {
        href(&path, &[("lang", lang), ("region", &code)])
    } else {
        href(&path, &[("lang", lang), ("region", &code), ("for", "someone")])
    };
    let ctx = context! {
        ..base(request, language),
        ..context! {
            kind => kind.as_str(),
            agent,
            gpc => pages::sends_gpc(request),
            back_href => href("/privacy", &[("lang", lang), ("region", &code)]),
            switch_agent_href,
            regions => regions(language),
            region => code.clone(),
            values => filled.values,
            errors,
            problems,
            unavailable => filled.unavailable,
            relationships => Relationship::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            correctable => correctable()
                .iter()
                .map(|field| context! { id => format!("correction_{field}"), label => correction_label(&words, field) })
                .collect::<Vec<_>>(),
            details_label,
            details_required,
            at_once => at_once(kind),
            when => region.map(|r| When::now(deps, r.regime(), language).of(kind).to_owned()).unwrap_or_default(),
        }
    };
    Pages::get().render("form.html", status, ctx)
}

/// `GET /privacy/{kind}`: the form for one right (`?for=someone`: made by an agent).
pub(crate) fn form<S, M>(deps: &Deps<S, M>, request: &Request, kind: RequestKind) -> Response<Body> {
    let language = pages::page_language(request);
    let agent = pages::query(request, "for").as_deref() == Some("someone");
    form_page(deps, request, kind, language, agent, Filled::default(), StatusCode::OK)
}

/// The fields a form may send; anything else is refused, as in the JSON API.
fn allowed_field(name: &str) -> bool {
    matches!(
        name,
        "lang"
            | "for"
            | "email"
            | "name"
            | "region"
            | "recipient"
            | "period_from"
            | "details"
            | "agent_name"
            | "agent_email"
            | "agent_relationship"
    ) || name.strip_prefix("correction_").is_some_and(|f| correctable().iter().any(|c| c == f))
}

/// `POST /privacy/{kind}`: the form sent without JavaScript (or with it: the same POST).
pub(crate) async fn submit_form<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
    kind: RequestKind,
) -> Result<Response<Body>, ApiError> {
    if !pages::same_origin(request) {
        return Err(pages::cross_site());
    }
    let fields = pages::read_form_of(request, allowed_field)?;
    let language = fields
        .get("lang")
        .and_then(|l| l.parse::<Language>().ok())
        .unwrap_or_else(|| pages::page_language(request));
    let agent = fields.get("for").map(String::as_str) == Some("someone");
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

    let corrections: BTreeMap<String, String> = correctable()
        .iter()
        .filter_map(|attribute| {
            field(&format!("correction_{attribute}")).map(|value| (attribute.clone(), value))
        })
        .collect();
    let raw = RawSubmission {
        email: field("email").unwrap_or_default(),
        kind: kind.as_str().to_owned(),
        region: field("region").unwrap_or_default(),
        name: field("name"),
        language: Some(language.as_str().to_owned()),
        details: field("details"),
        recipient: field("recipient"),
        corrections: (!corrections.is_empty()).then_some(corrections),
        agent: agent.then(|| RawAgent {
            name: field("agent_name").unwrap_or_default(),
            email: field("agent_email").unwrap_or_default(),
            relationship: field("agent_relationship").unwrap_or_default(),
        }),
        // Blank: the law's default period (CCPA: from 1 January 2022 on).
        period_from: field("period_from"),
    };
    // What only the form asks: the free text staff need to judge, or something to correct.
    let mut page_problems = Vec::new();
    if raw.details.is_none() {
        if let Some((_, true)) = details_field(kind) {
            page_problems.push(FieldError { field: "details".into(), problem: crate::Problem::Required });
        } else if kind == RequestKind::Rectification && raw.corrections.is_none() {
            page_problems
                .push(FieldError { field: "details".into(), problem: crate::Problem::NothingToCorrect });
        }
    }
    let values: BTreeMap<String, String> =
        fields.into_iter().filter(|(name, _)| name != "lang" && name != "for").collect();
    let parsed = Submission::parse(raw);
    let submission = match parsed {
        Ok(submission) if page_problems.is_empty() => submission,
        parsed => {
            let mut problems = parsed.err().unwrap_or_default();
            problems.extend(page_problems);
            let order = [
                "agent_name",
                "agent_email",
                "agent_relationship",
                "region",
                "email",
                "name",
                "recipient",
                "period_from",
            ];
            problems
                .sort_by_key(|p| order.iter().position(|o| *o == field_id(&p.field)).unwrap_or(order.len()));
            let filled = Filled { values, problems, unavailable: false };
            return Ok(form_page(
                deps,
                request,
                kind,
                language,
                agent,
                filled,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    match accept(deps, submission, client_network(request)).await {
        Ok(_) => {
            let lang = language.as_str();
            let region = values.get("region").cloned().unwrap_or_default();
            let ctx = context! {
                ..base(request, language),
                ..context! {
                    kind => kind.as_str(),
                    agent,
                    at_once => at_once(kind),
                    back_href => href("/privacy", &[("lang", lang), ("region", &region)]),
                }
            };
            Ok(Pages::get().render("sent.html", StatusCode::OK, ctx))
        }
        Err(IntakeError::Input(err)) => Err(err),
        Err(err) => {
            // Logged there; the person keeps what they typed and may press again.
            err.into_api_error();
            let filled = Filled { values, problems: Vec::new(), unavailable: true };
            Ok(form_page(deps, request, kind, language, agent, filled, StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

/// `GET /.well-known/gpc.json`.
pub(crate) fn gpc_resource() -> Response<Body> {
    let mut response = Response::new(Body::Text(GPC_RESOURCE.to_owned()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Which page a GET or HEAD wants; None for a method the route does not take.
pub(crate) fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_the_path() {
        assert_eq!(Route::of("/"), Route::Start);
        assert_eq!(Route::of("/privacy/"), Route::Start);
        assert_eq!(Route::of("/privacy/access"), Route::Form(RequestKind::Access));
        assert_eq!(Route::of("/privacy/opt_out_of_sale"), Route::Form(RequestKind::OptOutOfSale));
        assert_eq!(Route::of("/privacy/forget-me"), Route::Unknown);
        assert_eq!(Route::of("/.well-known/gpc.json"), Route::GpcResource);
        assert_eq!(Route::of("/requests"), Route::Requests);
        assert_eq!(Route::of("/privacy/access/extra"), Route::Unknown);
    }

    #[test]
    fn each_regime_offers_its_rights_and_only_california_the_opt_out_of_sale_among_them() {
        assert!(rights(Regime::Ccpa).contains(&RequestKind::OptOutOfSale));
        assert!(!rights(Regime::Gdpr).contains(&RequestKind::OptOutOfSale));
        assert!(rights(Regime::Gdpr).contains(&RequestKind::Restriction));
        assert!(rights(Regime::Gdpr).contains(&RequestKind::Objection));
        assert_eq!(rights(Regime::Other).len(), RequestKind::ALL.len());
    }

    #[test]
    fn every_problem_lands_on_a_field_of_the_form() {
        assert_eq!(field_id("agent.email"), "agent_email");
        assert_eq!(field_id("corrections.job_title"), "correction_job_title");
        assert!(field_id("corrections").starts_with("correction_"));
        assert_eq!(field_id("email"), "email");
    }

    #[test]
    fn the_gpc_resource_says_the_signal_is_honoured() {
        let body: serde_json::Value = serde_json::from_str(GPC_RESOURCE).unwrap();
        assert_eq!(body["gpc"], true);
        assert!(chrono::NaiveDate::parse_from_str(body["lastUpdate"].as_str().unwrap(), "%Y-%m-%d").is_ok());
    }
}
