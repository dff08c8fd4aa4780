//! `GET /verify`: the page the email's link opens. It reads the request id and token from the
//! URL fragment (which never reaches a server or its logs), posts them to the verify route and
//! shows the outcome. Without a fragment it offers a form for the code from the email.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use minijinja::{Environment, Value, context};
use sha2::{Digest, Sha256};

use privacy_shared::domain::Language;

const TEMPLATE: &str = include_str!("../templates/page.html");
const SCRIPT: &str = include_str!("../templates/verify.js");
const STYLE: &str = include_str!("../templates/verify.css");

/// The page in both languages, rendered once: it does not vary per request.
pub struct Page {
    english: String,
    dutch: String,
    content_security_policy: HeaderValue,
}

struct Words {
    language: &'static str,
    title: &'static str,
    intro: &'static str,
    reference: &'static str,
    code: &'static str,
    submit: &'static str,
    pending: &'static str,
    verified: &'static str,
    failed: &'static str,
    locked: &'static str,
    unavailable: &'static str,
    noscript: &'static str,
}

const EN: Words = Words {
    language: "Language",
    title: "Confirm your privacy request",
    intro: "We act on a privacy request only once we know it comes from the owner of the email address. If you opened the link from our email, this happens by itself. Otherwise, enter the reference and code from the email.",
    reference: "Reference",
    code: "Code",
    submit: "Confirm",
    pending: "Confirming your request…",
    verified: "Thank you. Your request is confirmed. We will email you when it has been handled.",
    failed: "This link or code is not valid. It may have expired or been used already. If needed, submit your request again.",
    locked: "Too many wrong attempts. For your protection this request is closed; please submit it again.",
    unavailable: "Something went wrong on our side. Please try again in a few minutes.",
    noscript: "This page needs JavaScript to confirm your request.",
};

const NL: Words = Words {
    language: "Taal",
    title: "Bevestig uw privacyverzoek",
    intro: "Wij voeren een privacyverzoek pas uit als vaststaat dat het afkomstig is van de eigenaar van het e-mailadres. Heeft u de link uit onze e-mail geopend, dan gebeurt dit vanzelf. Vul anders de referentie en de code uit de e-mail in.",
    reference: "Referentie",
    code: "Code",
    submit: "Bevestigen",
    pending: "Uw verzoek wordt bevestigd…",
    verified: "Dank u. Uw verzoek is bevestigd. Wij mailen u zodra het is afgehandeld.",
    failed: "Deze link of code is niet geldig. Misschien is hij verlopen of al gebruikt. Dien uw verzoek zo nodig opnieuw in.",
    locked: "Te veel onjuiste pogingen. Ter bescherming is dit verzoek gesloten; dien het opnieuw in.",
    unavailable: "Er ging bij ons iets mis. Probeer het over een paar minuten opnieuw.",
    noscript: "Deze pagina heeft JavaScript nodig om uw verzoek te bevestigen.",
};

fn csp_hash(source: &str) -> String {
    format!("'sha256-{}'", STANDARD.encode(Sha256::digest(source.as_bytes())))
}

impl Default for Page {
    fn default() -> Self {
        Page::new()
    }
}

impl Page {
    pub fn new() -> Page {
        let mut env = Environment::new();
        // Compiled in: a broken template fails every test, never a deployment.
        env.add_template("page.html", TEMPLATE).expect("page template is valid");
        let render = |lang: &str, w: &Words| {
            let t = context! {
                language => w.language, title => w.title, intro => w.intro, reference => w.reference,
                code => w.code, submit => w.submit, pending => w.pending, verified => w.verified,
                failed => w.failed, locked => w.locked, unavailable => w.unavailable, noscript => w.noscript,
            };
            env.get_template("page.html")
                .and_then(|tpl| {
                    tpl.render(context! {
                        lang, t,
                        script => Value::from_safe_string(SCRIPT.to_owned()),
                        css => Value::from_safe_string(STYLE.to_owned()),
                    })
                })
                .expect("page renders")
        };
        // Only our own inline script and style may run; the page talks only to its own origin.
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE)
        );
        Page {
            english: render("en", &EN),
            dutch: render("nl", &NL),
            content_security_policy: HeaderValue::from_str(&policy).expect("CSP is ASCII"),
        }
    }

    pub fn respond(&self, request: &Request) -> Response<Body> {
        let html = match page_language(request) {
            Language::En => &self.english,
            Language::Nl => &self.dutch,
        };
        let mut response = Response::new(Body::Text(html.clone()));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::CONTENT_SECURITY_POLICY, self.content_security_policy.clone());
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
        response
    }
}

/// `?lang=` first, then the browser's preference, then English.
fn page_language(request: &Request) -> Language {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first("lang"))
        .and_then(|l| l.parse().ok())
        .or_else(|| {
            request
                .headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language)
        })
        .unwrap_or(Language::En)
}
