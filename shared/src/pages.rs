//! The HTML edge the requester's pages share (the privacy center: start, forms, confirmation,
//! status): the page language, the security headers every page carries, form bodies, and the
//! same-origin check that makes a plain form POST safe from cross-site forgery.
//!
//! Pages are rendered by the function that owns the action behind them (intake renders the
//! forms, verify the confirmation, download the status), so each keeps its own narrow rights;
//! what they share lives here: one layout, one stylesheet, one set of words per language.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use minijinja::Environment;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::api::{ApiError, body_within_limit, is_printable_field_name};
use crate::domain::Language;

/// The stylesheet of every page, inlined (one round trip, allowed by its hash).
pub const STYLE: &str = include_str!("../templates/pages/center.css");
const LAYOUT: &str = include_str!("../templates/pages/layout.html");
const FIELDS: &str = include_str!("../templates/pages/fields.html");
/// The words of the pages, a file per page and language (`words/<page>.<lang>.yaml`): each
/// file's top-level keys become the page's section of `w` in the templates.
const WORDS: &[(&str, &str, &str)] = &[
    (
        "common",
        include_str!("../templates/pages/words/common.en.yaml"),
        include_str!("../templates/pages/words/common.nl.yaml"),
    ),
    (
        "start",
        include_str!("../templates/pages/words/start.en.yaml"),
        include_str!("../templates/pages/words/start.nl.yaml"),
    ),
    (
        "form",
        include_str!("../templates/pages/words/form.en.yaml"),
        include_str!("../templates/pages/words/form.nl.yaml"),
    ),
    (
        "status",
        include_str!("../templates/pages/words/status.en.yaml"),
        include_str!("../templates/pages/words/status.nl.yaml"),
    ),
];

/// `'sha256-…'`: how a Content Security Policy allows one inline script or style.
pub fn csp_hash(source: &str) -> String {
    format!("'sha256-{}'", STANDARD.encode(Sha256::digest(source.as_bytes())))
}

/// The policy of a page whose only script and style are the given inline ones: nothing from
/// another origin, no plugins, no framing, forms and fetches only to this origin.
pub fn content_security_policy(scripts: &[&str]) -> HeaderValue {
    let scripts = if scripts.is_empty() {
        "'none'".to_owned()
    } else {
        scripts.iter().map(|s| csp_hash(s)).collect::<Vec<_>>().join(" ")
    };
    let policy = format!(
        "default-src 'none'; script-src {scripts}; style-src {}; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(STYLE)
    );
    HeaderValue::from_str(&policy).expect("CSP is ASCII")
}

/// An HTML answer with the headers every page carries.
pub fn html_response(status: StatusCode, html: String, policy: &HeaderValue) -> Response<Body> {
    let mut response = Response::new(Body::Text(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language, Sec-GPC"));
    response
}

/// `?lang=` first, then the browser's preference, then English.
pub fn page_language(request: &Request) -> Language {
    query_language(request)
        .or_else(|| {
            request
                .headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language)
        })
        .unwrap_or(Language::En)
}

/// The language the page was asked for explicitly.
pub fn query_language(request: &Request) -> Option<Language> {
    request.query_string_parameters_ref().and_then(|q| q.first("lang")).and_then(|l| l.parse().ok())
}

/// A URL for an `href`, escaped for an attribute but keeping its slashes readable (minijinja's
/// own escaping also encodes `/`).
pub fn href(url: &str) -> minijinja::Value {
    minijinja::Value::from_safe_string(crate::mail::templates::escape_attribute(url))
}

/// The link to this same page in the other language(s), keeping the rest of the query.
pub fn switch_links(request: &Request, current: Language) -> Vec<minijinja::Value> {
    let path = request.uri().path();
    let kept: Vec<(String, String)> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .filter(|(name, _)| name != "lang")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
    [(Language::En, "English"), (Language::Nl, "Nederlands")]
        .into_iter()
        .filter(|(language, _)| *language != current)
        .map(|(language, label)| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("lang", language.as_str());
            query.extend_pairs(kept.iter());
            minijinja::context! { lang => language.as_str(), label, href => href(&format!("{path}?{}", query.finish())) }
        })
        .collect()
}

/// One query parameter, when given and not blank.
pub fn query(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Whether the browser says the person asks not to have their data sold or shared (`Sec-GPC: 1`,
/// Global Privacy Control).
pub fn sends_gpc(request: &Request) -> bool {
    request.headers().get("sec-gpc").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "1")
}

/// The fields of a form POST (`application/x-www-form-urlencoded`). A field sent twice keeps its
/// first value only if both agree; two different values are refused (two readers of one body must
/// not read it two ways).
pub fn read_form(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The form must be sent as Content-Type: application/x-www-form-urlencoded.",
        )
    };
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(unsupported());
    }
    let bytes = body_within_limit(request)?;
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_form", "The form is not valid UTF-8."));
    }
    let mut fields = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(bytes) {
        match fields.get(name.as_ref()) {
            Some(earlier) if earlier != &value => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "duplicate_key",
                    "The form names the same field more than once with different values.",
                ));
            }
            Some(_) => {}
            None => {
                fields.insert(name.into_owned(), value.into_owned());
            }
        }
    }
    Ok(fields)
}

/// [`read_form`] of a form whose fields `allowed` names; a field none of our pages sends means
/// the form is no form of ours (422 `unknown_field`, as the JSON API answers an unknown field).
pub fn read_form_of(
    request: &Request,
    allowed: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, ApiError> {
    let fields = read_form(request)?;
    match fields.keys().find(|name| !allowed(name)) {
        None => Ok(fields),
        Some(unknown) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            if is_printable_field_name(unknown) {
                format!("Unknown form field `{unknown}`.")
            } else {
                "Unknown form field.".to_owned()
            },
        )),
    }
}

/// Whether a form POST comes from one of our own pages. Browsers say where a request comes from
/// (`Sec-Fetch-Site`, else `Origin`); a cross-site form is refused, so no other site can make a
/// visitor's browser submit, confirm or read anything. A client that sends neither is no
/// browser, so there is no visitor to forge for (curl gets what the JSON API would give it).
pub fn same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // `none`: the person typed or bookmarked it; nothing cross-site involved.
        return matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// The answer to a cross-site form.
pub fn cross_site() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "cross_site", "Forms are accepted only from this site's own pages.")
}

/// The words of every page in one language: `w.<page>.<key>` in the templates.
pub fn words(language: Language) -> minijinja::Value {
    static PARSED: std::sync::OnceLock<[minijinja::Value; 2]> = std::sync::OnceLock::new();
    let [en, nl] = PARSED.get_or_init(|| {
        let parse = |pick: fn(&(&'static str, &'static str, &'static str)) -> &'static str| {
            let pages: BTreeMap<&str, serde_json::Value> = WORDS
                .iter()
                .map(|entry| {
                    (entry.0, serde_norway::from_str(pick(entry)).expect("page words are valid YAML"))
                })
                .collect();
            minijinja::Value::from_serialize(&pages)
        };
        [parse(|entry| entry.1), parse(|entry| entry.2)]
    });
    match language {
        Language::En => en.clone(),
        Language::Nl => nl.clone(),
    }
}

/// A template environment with the shared layout and field macros; each function adds its own
/// pages, which extend `layout.html`.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    // Compiled in: a broken template fails every test, never a deployment.
    env.add_template("layout.html", LAYOUT).expect("layout template is valid");
    env.add_template("fields.html", FIELDS).expect("fields template is valid");
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder().method("POST").uri("/privacy/access");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    #[test]
    fn a_form_from_another_site_is_refused_and_one_from_our_pages_accepted() {
        assert!(same_origin(&post(&[("sec-fetch-site", "same-origin")], "")));
        assert!(same_origin(&post(&[("sec-fetch-site", "none")], "")));
        assert!(!same_origin(&post(&[("sec-fetch-site", "cross-site")], "")));
        assert!(!same_origin(&post(&[("sec-fetch-site", "same-site")], "")));
        assert!(same_origin(&post(
            &[("origin", "https://privacy.example.com"), ("host", "privacy.example.com")],
            ""
        )));
        assert!(!same_origin(&post(
            &[("origin", "https://evil.example"), ("host", "privacy.example.com")],
            ""
        )));
        assert!(!same_origin(&post(&[("origin", "null"), ("host", "privacy.example.com")], "")));
        assert!(same_origin(&post(&[], "")), "no browser, no visitor to forge for");
    }

    #[test]
    fn a_form_body_is_read_only_as_urlencoded_utf8_with_one_value_per_field() {
        let form = |body: &str| {
            read_form(&post(&[("content-type", "application/x-www-form-urlencoded; charset=UTF-8")], body))
        };
        let fields = form("email=a%40b.nl&name=J+de+V%C3%A9&email=a%40b.nl").unwrap();
        assert_eq!(fields["email"], "a@b.nl");
        assert_eq!(fields["name"], "J de Vé");
        assert_eq!(form("email=a&email=b").unwrap_err().code, "duplicate_key");
        assert_eq!(read_form(&post(&[("content-type", "application/json")], "{}")).unwrap_err().status, 415);
        let big = format!("details={}", "x".repeat(crate::api::MAX_BODY_BYTES));
        assert_eq!(form(&big).unwrap_err().status, 413);
    }

    #[test]
    fn a_form_with_a_field_no_page_of_ours_sends_is_refused_naming_it_only_when_plain() {
        let form = |body: &str| post(&[("content-type", "application/x-www-form-urlencoded")], body);
        let ours = |name: &str| matches!(name, "token" | "part");
        assert_eq!(read_form_of(&form("token=t&part=2"), ours).unwrap()["part"], "2");
        let refused = read_form_of(&form("token=t&admin=1"), ours).unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
        assert_eq!(refused.message, "Unknown form field `admin`.");
        let odd = read_form_of(&form("token=t&%3Cb%3E=1"), ours).unwrap_err();
        assert_eq!(odd.message, "Unknown form field.", "a name that is no plain name is not echoed");
    }

    #[test]
    fn the_shared_templates_compile_and_a_field_names_its_error() {
        let mut env = environment();
        env.add_template("t.html", r#"{% import "fields.html" as f %}{{ f.input("email", "Email", "x<y", errors={"email": "Wrong"}) }}"#)
            .unwrap();
        let html = env.get_template("t.html").unwrap().render(minijinja::context! {}).unwrap();
        assert!(html.contains(r#"value="x&lt;y""#), "{html}");
        assert!(
            html.contains(r#"aria-invalid="true""#) && html.contains(r#"id="email-error">Wrong"#),
            "{html}"
        );
    }

    #[test]
    fn the_policy_allows_only_the_named_inline_script_and_our_own_style() {
        let policy = content_security_policy(&["console.log(1)"]);
        let policy = policy.to_str().unwrap();
        assert!(policy.contains(&csp_hash("console.log(1)")));
        assert!(policy.contains(&csp_hash(STYLE)));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
        assert!(content_security_policy(&[]).to_str().unwrap().contains("script-src 'none'"));
    }

    /// Every key, nested ones as `a.b`, with whether its value is text.
    fn shape(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    shape(value, &format!("{prefix}.{key}"), out);
                }
            }
            serde_json::Value::String(text) => {
                assert!(!text.trim().is_empty(), "{prefix} is blank");
                out.push(prefix.to_owned());
            }
            other => out.push(format!("{prefix}: {other}")),
        }
    }

    #[test]
    fn both_languages_have_every_word_and_none_is_blank() {
        for (page, en, nl) in WORDS {
            let (mut english, mut dutch) = (Vec::new(), Vec::new());
            shape(&serde_norway::from_str(en).unwrap(), page, &mut english);
            shape(&serde_norway::from_str(nl).unwrap(), page, &mut dutch);
            assert_eq!(english, dutch, "{page}");
        }
    }
}
