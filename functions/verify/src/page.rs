//! `GET /verify`: the page the email's link opens. It reads the request id and token from the
//! URL fragment (which never reaches a server or its logs), asks the preview route what the link
//! would confirm, shows that, and confirms only when the person presses the button. Without a
//! fragment it offers a form for the reference and code from the email.
//!
//! The same page works without JavaScript: its forms post to `POST /verify`, and the answer is
//! this page rendered on the server in the state the script would have shown (the summary with
//! its button, the outcome, or the form again with what went wrong).

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use minijinja::{Environment, Value, context};

use privacy_shared::domain::{Language, RequestKind};
use privacy_shared::mail::templates::kind_label;
use privacy_shared::pages::{csp_hash, html_response, page_language};

use crate::{Confirmation, Preview};

const TEMPLATE: &str = include_str!("../templates/page.html");
const SCRIPT: &str = include_str!("../templates/verify.js");
const STYLE: &str = include_str!("../templates/verify.css");

/// The page: the empty one in both languages rendered once (it does not vary per request), and
/// the template for the states a form POST answers with.
pub struct Page {
    english: String,
    dutch: String,
    env: Environment<'static>,
    content_security_policy: HeaderValue,
}

/// What a form POST answers with, rendered on the server.
pub(crate) enum View<'a> {
    /// What the code would confirm, with the one button that confirms it. The token goes back
    /// only into that button's form (hidden), never into the page's text.
    Summary { preview: &'a Preview, token: &'a str },
    /// The button was pressed and the confirmation is done.
    Confirmed(Confirmation),
    /// The form again, with the reference as typed and what went wrong.
    Refused { outcome: Refusal, request_id: &'a str },
}

/// Why a form was refused, as the page says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Wrong, expired, used or unknown: deliberately one answer.
    Failed,
    Locked,
    Unavailable,
    /// The reference or the code is missing.
    Incomplete,
    /// Not a form this page sends (another content type, too large, not UTF-8).
    Unreadable,
}

impl Refusal {
    /// The status-message key, also its CSS class (`data-*` on `#status` for the script).
    fn key(self) -> &'static str {
        match self {
            Refusal::Failed => "failed",
            Refusal::Locked => "locked",
            Refusal::Unavailable => "unavailable",
            Refusal::Incomplete => "incomplete",
            Refusal::Unreadable => "unreadable",
        }
    }

    fn words(self, w: &Words) -> &'static str {
        match self {
            Refusal::Failed => w.failed,
            Refusal::Locked => w.locked,
            Refusal::Unavailable => w.unavailable,
            Refusal::Incomplete => w.incomplete,
            Refusal::Unreadable => w.unreadable,
        }
    }
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
    incomplete: &'static str,
    unreadable: &'static str,
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
    incomplete: "Enter both the reference and the code from the email.",
    unreadable: "The form could not be read. Please enter the reference and the code from the email again.",
    noscript: "Without JavaScript this page cannot read the link itself. Enter the reference and the code from the email in the form below: it works without JavaScript.",
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
    incomplete: "Vul zowel de referentie als de code uit de e-mail in.",
    unreadable: "Het formulier kon niet worden gelezen. Vul de referentie en de code uit de e-mail opnieuw in.",
    noscript: "Zonder JavaScript kan deze pagina de link zelf niet lezen. Vul de referentie en de code uit de e-mail in het formulier hieronder in: dat werkt zonder JavaScript.",
};

fn words(language: Language) -> &'static Words {
    match language {
        Language::En => &EN,
        Language::Nl => &NL,
    }
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
        // Only our own inline script and style may run; the page talks and posts only to its own
        // origin.
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
            csp_hash(SCRIPT),
            csp_hash(STYLE)
        );
        let mut page = Page {
            english: String::new(),
            dutch: String::new(),
            env,
            content_security_policy: HeaderValue::from_str(&policy).expect("CSP is ASCII"),
        };
        page.english = page.render(Language::En, None);
        page.dutch = page.render(Language::Nl, None);
        page
    }

    /// `GET /verify`: the empty page, in the language asked for.
    pub fn respond(&self, request: &Request) -> Response<Body> {
        let html = match page_language(request) {
            Language::En => &self.english,
            Language::Nl => &self.dutch,
        };
        html_response(StatusCode::OK, html.clone(), &self.content_security_policy)
    }

    /// The answer to a form POST: the page in `view`'s state.
    pub(crate) fn answer(&self, status: StatusCode, language: Language, view: View<'_>) -> Response<Body> {
        html_response(status, self.render(language, Some(view)), &self.content_security_policy)
    }

    fn render(&self, language: Language, view: Option<View<'_>>) -> String {
        let w = words(language);
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
        let (summary, outcome, typed, done) = match view {
            None => (None, None, "", false),
            Some(View::Summary { preview, token }) => {
                let summary = context! {
                    request_id => preview.request_id.to_string(),
                    token,
                    confirm => confirm_name(preview.confirm),
                    kind_label => kind_label(preview.kind, language),
                    irreversible => preview.irreversible,
                    recipient => preview.recipient.clone(),
                };
                (Some(summary), None, "", false)
            }
            Some(View::Confirmed(confirmation)) => {
                let (key, text) = match confirmation {
                    Confirmation::Request => ("verified", w.verified),
                    Confirmation::Recipient => ("recipient-confirmed", w.recipient_confirmed),
                };
                (None, Some(context! { key, text }), "", true)
            }
            Some(View::Refused { outcome, request_id }) => {
                let outcome = context! { key => outcome.key(), text => outcome.words(w) };
                (None, Some(outcome), request_id, false)
            }
        };
        self.env
            .get_template("page.html")
            .and_then(|tpl| {
                tpl.render(context! {
                    lang => language.as_str(), t, kinds, summary, outcome, typed, done,
                    script => Value::from_safe_string(SCRIPT.to_owned()),
                    css => Value::from_safe_string(STYLE.to_owned()),
                })
            })
            .expect("page renders")
    }
}

fn confirm_name(confirmation: Confirmation) -> &'static str {
    match confirmation {
        Confirmation::Request => "request",
        Confirmation::Recipient => "recipient",
    }
}
