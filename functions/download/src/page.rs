//! `GET /status`: the "where is my request" page every email links to. Its script reads the
//! reference and code from the URL fragment (never sent to a server, so in no log), takes them
//! out of the address bar, asks `POST /requests/{id}/status` and shows the answer in words.
//! Without JavaScript the person types (or pastes) them into the form, which posts to
//! `POST /status` and gets the same page rendered on the server.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use minijinja::{Environment, Value, context};

use privacy_shared::domain::{BusinessCalendar, Language, StatusKey};
use privacy_shared::mail::templates::long_date;
use privacy_shared::mail::words::money;
use privacy_shared::pages;

use crate::status::StatusView;

const TEMPLATE: &str = include_str!("../templates/status.html");
/// The page's one script, allowed by its hash.
pub const SCRIPT: &str = include_str!("../templates/status.js");

/// What the status routes need besides the store: the key the links are signed with, the
/// calendar their dates are told in, and the page.
pub struct StatusPages {
    pub key: StatusKey,
    pub calendar: BusinessCalendar,
    env: Environment<'static>,
    /// Where the download buttons' redirect leads (the export bucket's origin): found once per
    /// instance, it does not change (a try that fails is tried again next time).
    pub(crate) export_origin: tokio::sync::OnceCell<String>,
}

/// What the page says above the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Wrong code, unknown reference: one answer for every failure.
    Unavailable,
    /// Our failure.
    Failed,
    /// A field left empty.
    Incomplete,
}

impl StatusPages {
    pub fn new(key: StatusKey, calendar: BusinessCalendar) -> StatusPages {
        let mut env = pages::environment();
        // Compiled in: a broken template fails every test, never a deployment.
        env.add_template("status.html", TEMPLATE).expect("status page template is valid");
        StatusPages { key, calendar, env, export_origin: tokio::sync::OnceCell::new() }
    }

    /// The pages of a function configured like the others (the tests' and the local stack's).
    pub fn from_config(config: &privacy_shared::Config) -> StatusPages {
        StatusPages::new(config.status_links.clone(), config.calendar.clone())
    }

    /// The page, with the answer to a form when there is one. `form_target`: where the download
    /// buttons' redirect leads (the export bucket's origin), which the policy must allow forms to
    /// go on to.
    pub(crate) fn render(
        &self,
        request: &Request,
        status: StatusCode,
        answer: Option<(&StatusView, &str)>,
        message: Option<Message>,
        reference: &str,
        form_target: Option<&str>,
    ) -> Response<Body> {
        let language = pages::page_language(request);
        let words = pages::words(language);
        let view = answer.map(|(view, token)| self.view(view, token, language));
        let message = message.map(|m| {
            let (class, key) = match m {
                Message::Unavailable => ("warning", "unavailable"),
                Message::Failed => ("warning", "failed_service"),
                Message::Incomplete => ("warning", "incomplete"),
            };
            let text = words.get_attr("status").and_then(|s| s.get_attr(key)).unwrap_or_default();
            context! { class, text }
        });
        let ctx = context! {
            lang => language.as_str(),
            w => words,
            css => Value::from_safe_string(pages::STYLE.to_owned()),
            switch => pages::switch_links(request, language),
            script => Value::from_safe_string(SCRIPT.to_owned()),
            view,
            message,
            reference,
        };
        let html = match self.env.get_template("status.html").and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(err) => {
                tracing::error!(error = %err.kind(), "status page failed to render");
                return privacy_shared::api::ApiError::unavailable().into_response();
            }
        };
        pages::html_response(status, html, &policy(form_target))
    }

    fn view(&self, view: &StatusView, token: &str, language: Language) -> Value {
        context! {
            request_id => view.request_id.to_string(),
            agent => view.audience == "agent",
            kind => view.kind.as_str(),
            status => view.status.as_str(),
            received_on => long_date(view.received_on, language),
            due_on => long_date(view.due_on, language),
            extended => view.extended.as_ref().map(|e| context! {
                until => long_date(e.until, language),
                reason => e.reason.clone(),
            }),
            cost => view.cost_estimate.as_ref().map(|c| money(c, language)),
            expected => view.expected.as_str(),
            download => view.download.map(|d| context! {
                parts => d.parts,
                until => long_date(d.available_until, language),
            }),
            // Only into the download buttons' hidden fields, and only where there are buttons.
            token => view.download.map(|_| token.to_owned()),
        }
    }
}

/// The shared pages' policy, with the export bucket allowed as where a download form's redirect
/// may go (browsers hold a form's redirects to `form-action` too).
fn policy(form_target: Option<&str>) -> HeaderValue {
    let base = pages::content_security_policy(&[SCRIPT]);
    let Some(origin) = form_target else { return base };
    let text = base
        .to_str()
        .unwrap_or_default()
        .replace("form-action 'self'", &format!("form-action 'self' {origin}"));
    HeaderValue::from_str(&text).unwrap_or(base)
}

/// The origin (`https://host[:port]`) of a URL, if it has one of http(s).
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "https" | "http") {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next().filter(|h| !h.is_empty())?;
    // Only what a CSP source may hold: no user info, no quotes or spaces.
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        .then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_presigned_url_is_its_scheme_and_host() {
        assert_eq!(
            origin_of("https://b.s3.eu-west-1.amazonaws.com/exports/x?X-Amz-Signature=1").as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(origin_of("http://127.0.0.1:5093/b/exports/x").as_deref(), Some("http://127.0.0.1:5093"));
        for bad in ["ftp://x/y", "https:///x", "https://a b/", "https://u@h/", "no-scheme"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_policy_lets_a_download_form_go_on_to_the_bucket_only() {
        let policy = policy(Some("https://b.s3.amazonaws.com"));
        let policy = policy.to_str().unwrap();
        assert!(policy.contains("form-action 'self' https://b.s3.amazonaws.com;"), "{policy}");
        assert!(policy.contains(&pages::csp_hash(SCRIPT)));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn every_status_and_everything_expected_has_its_words_in_both_languages() {
        use crate::status::Expected;
        use privacy_shared::domain::Status;
        for language in [Language::En, Language::Nl] {
            let words = pages::words(language).get_attr("status").unwrap();
            let (statuses, expected) =
                (words.get_attr("statuses").unwrap(), words.get_attr("expected").unwrap());
            for status in Status::ALL {
                assert!(statuses.get_attr(status.as_str()).unwrap().as_str().is_some(), "{status}");
            }
            for what in Expected::ALL {
                assert!(expected.get_attr(what.as_str()).unwrap().as_str().is_some(), "{}", what.as_str());
            }
            assert_eq!(words.get_attr("months").unwrap().as_str().unwrap().split(',').count(), 12);
        }
    }

    #[test]
    fn every_kind_has_its_words_as_the_emails_name_it() {
        use privacy_shared::domain::RequestKind;
        use privacy_shared::mail::templates::kind_label;
        for language in [Language::En, Language::Nl] {
            let kinds = pages::words(language).get_attr("status").unwrap().get_attr("kinds").unwrap();
            for kind in RequestKind::ALL {
                let word = kinds.get_attr(kind.as_str()).unwrap();
                assert_eq!(word.as_str(), Some(kind_label(kind, language)), "{kind}");
            }
        }
    }
}
