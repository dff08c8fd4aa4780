//! `GET /verify`: the page the email's link opens. It reads the request id and token from the
//! URL fragment (which never reaches a server or its logs), asks the preview route what the link
//! would confirm, shows that, and confirms only when the person presses the button. Without a
//! fragment it offers a form for the reference and code from the email.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use minijinja::{Environment, Value, context};
use sha2::{Digest, Sha256};

use privacy_shared::domain::{Language, RequestKind};
use privacy_shared::mail::templates::kind_label;

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
    summary_heading: &'static str,
    summary_intro: &'static str,
    recipient_intro: &'static str,
    irreversible: &'static str,
    not_you: &'static str,
    confirm_request: &'static str,
    confirm_recipient: &'static str,
    reference: &'static str,
    code: &'static str,
    continue_: &'static str,
    checking: &'static str,
    pending: &'static str,
    verified: &'static str,
    recipient_confirmed: &'static str,
    failed: &'static str,
    locked: &'static str,
    unavailable: &'static str,
    noscript: &'static str,
}

const EN: Words = Words {
    language: "Language",
    title: "Confirm your privacy request",
    intro: "We act on a privacy request only once the owner of the email address confirms it. Nothing happens until you press the button below. If you did not open a link from our email, enter the reference and code from the email.",
    summary_heading: "What you are confirming",
    summary_intro: "You asked for",
    recipient_intro: "Your personal data would be sent directly to:",
    irreversible: "A deletion cannot be undone: once you confirm, your personal data will be erased and cannot be restored.",
    not_you: "If you did not ask for this, close this page: nothing will happen.",
    confirm_request: "Confirm my request",
    confirm_recipient: "Confirm this recipient",
    reference: "Reference",
    code: "Code",
    continue_: "Continue",
    checking: "Checking your link…",
    pending: "Confirming…",
    verified: "Thank you. Your request is confirmed. We will email you when it has been handled.",
    recipient_confirmed: "Thank you. The recipient is confirmed; we will send your data there when it is ready.",
    failed: "This link or code is not valid. It may have expired or been used already. If needed, submit your request again.",
    locked: "Too many wrong attempts: this link no longer works. Submit your request again to receive a new link.",
    unavailable: "Something went wrong on our side. Please try again in a few minutes.",
    noscript: "This page needs JavaScript to confirm your request.",
};

const NL: Words = Words {
    language: "Taal",
    title: "Bevestig uw privacyverzoek",
    intro: "Wij voeren een privacyverzoek pas uit als de eigenaar van het e-mailadres het bevestigt. Er gebeurt niets totdat u op de knop hieronder drukt. Heeft u geen link uit onze e-mail geopend, vul dan de referentie en de code uit de e-mail in.",
    summary_heading: "Wat u bevestigt",
    summary_intro: "U vroeg om",
    recipient_intro: "Uw persoonsgegevens zouden rechtstreeks worden verstuurd naar:",
    irreversible: "Verwijdering kan niet ongedaan worden gemaakt: zodra u bevestigt, worden uw persoonsgegevens gewist en kunnen zij niet worden hersteld.",
    not_you: "Heeft u hier niet om gevraagd? Sluit dan deze pagina: er gebeurt niets.",
    confirm_request: "Mijn verzoek bevestigen",
    confirm_recipient: "Deze ontvanger bevestigen",
    reference: "Referentie",
    code: "Code",
    continue_: "Verder",
    checking: "Uw link wordt gecontroleerd…",
    pending: "Bezig met bevestigen…",
    verified: "Dank u. Uw verzoek is bevestigd. Wij mailen u zodra het is afgehandeld.",
    recipient_confirmed: "Dank u. De ontvanger is bevestigd; wij sturen uw gegevens daarheen zodra ze klaar zijn.",
    failed: "Deze link of code is niet geldig. Misschien is hij verlopen of al gebruikt. Dien uw verzoek zo nodig opnieuw in.",
    locked: "Te veel onjuiste pogingen: deze link werkt niet meer. Dien uw verzoek opnieuw in om een nieuwe link te ontvangen.",
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
        let render = |language: Language, w: &Words| {
            let lang = language.as_str();
            let t = context! {
                language => w.language, title => w.title, intro => w.intro,
                summary_heading => w.summary_heading, summary_intro => w.summary_intro,
                recipient_intro => w.recipient_intro, irreversible => w.irreversible, not_you => w.not_you,
                confirm_request => w.confirm_request, confirm_recipient => w.confirm_recipient,
                reference => w.reference, code => w.code, continue_label => w.continue_, checking => w.checking,
                pending => w.pending, verified => w.verified, recipient_confirmed => w.recipient_confirmed,
                failed => w.failed, locked => w.locked, unavailable => w.unavailable, noscript => w.noscript,
            };
            let kinds: Vec<Value> = RequestKind::ALL
                .iter()
                .map(|kind| context! { name => kind.as_str(), label => kind_label(*kind, language) })
                .collect();
            env.get_template("page.html")
                .and_then(|tpl| {
                    tpl.render(context! {
                        lang, t, kinds,
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
            english: render(Language::En, &EN),
            dutch: render(Language::Nl, &NL),
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
