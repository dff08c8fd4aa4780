//! Every email's words, in English and Dutch, rendered by minijinja from files under
//! `shared/templates/` (HTML is auto-escaped by file extension).

use chrono::{Datelike, NaiveDate};
use minijinja::{Environment, Value, context};

use super::{MailError, OutgoingEmail};
use crate::domain::{
    EmailAddress, Language, Regime, RequestId, RequestKind, RequestRecord, VerificationToken,
};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const FILES: &[(&str, &str)] = templates![
    "email_layout.html",
    "verification.en.subject.txt",
    "verification.en.txt",
    "verification.en.html",
    "verification.nl.subject.txt",
    "verification.nl.txt",
    "verification.nl.html",
    "staff_notice.subject.txt",
    "staff_notice.txt",
    "staff_notice.html",
    "completed.en.subject.txt",
    "completed.en.txt",
    "completed.en.html",
    "completed.nl.subject.txt",
    "completed.nl.txt",
    "completed.nl.html",
];

/// The template environment, built once per cold start.
pub struct Templates {
    env: Environment<'static>,
}

/// What the verification (and receipt-confirmation) email says.
pub struct VerificationEmail<'a> {
    pub to: &'a EmailAddress,
    pub language: Language,
    pub request_id: RequestId,
    pub kind: RequestKind,
    pub regime: Regime,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    pub token: &'a VerificationToken,
    pub valid_hours: i64,
    pub public_base_url: &'a str,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        for (name, source) in FILES {
            // The sources are compiled in; a syntax error fails every test, never production.
            env.add_template(name, source).expect("built-in template is valid");
        }
        Templates { env }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, MailError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| MailError::Template(format!("{name}: {}", e.kind())))
    }

    pub fn verification(&self, email: &VerificationEmail<'_>) -> Result<OutgoingEmail, MailError> {
        let lang = email.language.as_str();
        let verify_page = format!("{}/verify", email.public_base_url);
        let link =
            format!("{verify_page}#request_id={}&token={}", email.request_id, email.token.expose_secret());
        let subject =
            self.render(&format!("verification.{lang}.subject.txt"), context! {})?.trim().to_owned();
        // minijinja's HTML escaping also encodes `/`; URLs read better escaped only where needed.
        let html_links = context! {
            link => Value::from_safe_string(escape_attribute(&link)),
            verify_page => Value::from_safe_string(escape_attribute(&verify_page)),
        };
        let ctx = context! {
            lang,
            title => subject,
            request_id => email.request_id.to_string(),
            kind_label => kind_label(email.kind, email.language),
            regime => email.regime.as_str(),
            received_on => long_date(email.received_on, email.language),
            due_on => long_date(email.due_on, email.language),
            valid_hours => email.valid_hours,
            link,
            verify_page,
            code => email.token.expose_secret(),
        };
        Ok(OutgoingEmail {
            to: email.to.clone(),
            text: self.render(&format!("verification.{lang}.txt"), ctx.clone())?,
            html: self.render(&format!("verification.{lang}.html"), context! { ..html_links, ..ctx })?,
            subject,
        })
    }
}

impl Templates {
    /// Tells the privacy staff a request was verified. English; the subject names no person.
    pub fn staff_notice(
        &self,
        to: &EmailAddress,
        record: &RequestRecord,
        automatic: bool,
    ) -> Result<OutgoingEmail, MailError> {
        let ctx = context! {
            lang => "en",
            request_id => record.id.to_string(),
            kind => record.kind.as_str(),
            regime => record.regime.as_str().to_uppercase(),
            region => record.region.as_str(),
            language => record.language.as_str(),
            received_on => long_date(record.received_on, Language::En),
            due_on => long_date(record.due_on, Language::En),
            acknowledge_by => record.acknowledge_by.map(|d| long_date(d, Language::En)),
            email => record.email.as_str(),
            name => record.name.clone(),
            details => record.details.clone(),
            automatic,
        };
        let subject = self.render("staff_notice.subject.txt", ctx.clone())?.trim().to_owned();
        Ok(OutgoingEmail {
            to: to.clone(),
            text: self.render("staff_notice.txt", ctx.clone())?,
            html: self.render("staff_notice.html", context! { title => subject.clone(), ..ctx })?,
            subject,
        })
    }

    /// Tells the requester their request is done; with a download link where there is an export.
    pub fn completed(
        &self,
        record: &RequestRecord,
        download: Option<(&str, NaiveDate)>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language.as_str();
        let subject = self.render(&format!("completed.{lang}.subject.txt"), context! {})?.trim().to_owned();
        let ctx = context! {
            lang,
            title => subject,
            request_id => record.id.to_string(),
            kind_label => kind_label(record.kind, record.language),
            download => download.map(|(url, _)| url.to_owned()),
            available_until => download.map(|(_, until)| long_date(until, record.language)),
        };
        let html_links =
            context! { download => download.map(|(url, _)| Value::from_safe_string(escape_attribute(url))) };
        Ok(OutgoingEmail {
            to: record.email.clone(),
            text: self.render(&format!("completed.{lang}.txt"), ctx.clone())?,
            html: self.render(&format!("completed.{lang}.html"), context! { ..html_links, ..ctx })?,
            subject,
        })
    }
}

/// Escapes what is special in HTML text and quoted attributes.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How each right is named in a sentence ("your request for …" / "uw verzoek om …").
pub fn kind_label(kind: RequestKind, language: Language) -> &'static str {
    use RequestKind as K;
    match (language, kind) {
        (Language::En, K::Access) => "access to your personal data",
        (Language::En, K::Portability) => "a portable copy of your personal data",
        (Language::En, K::Rectification) => "correction of your personal data",
        (Language::En, K::Deletion) => "deletion of your personal data",
        (Language::En, K::Restriction) => "restriction of the processing of your personal data",
        (Language::En, K::Objection) => "an objection to the processing of your personal data",
        (Language::En, K::WithdrawConsent) => "withdrawal of your consent",
        (Language::En, K::OptOutOfSale) => "an opt-out of the sale of your personal data",
        (Language::En, K::Unsubscribe) => "unsubscription from marketing email",
        (Language::Nl, K::Access) => "inzage in uw persoonsgegevens",
        (Language::Nl, K::Portability) => "overdracht van uw persoonsgegevens",
        (Language::Nl, K::Rectification) => "correctie van uw persoonsgegevens",
        (Language::Nl, K::Deletion) => "verwijdering van uw persoonsgegevens",
        (Language::Nl, K::Restriction) => "beperking van de verwerking van uw persoonsgegevens",
        (Language::Nl, K::Objection) => "bezwaar tegen de verwerking van uw persoonsgegevens",
        (Language::Nl, K::WithdrawConsent) => "intrekking van uw toestemming",
        (Language::Nl, K::OptOutOfSale) => "afmelding voor de verkoop van uw persoonsgegevens",
        (Language::Nl, K::Unsubscribe) => "afmelding voor marketing-e-mail",
    }
}

/// "28 December 2026" / "28 december 2026".
pub fn long_date(day: NaiveDate, language: Language) -> String {
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const NL: [&str; 12] = [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let months = match language {
        Language::En => &EN,
        Language::Nl => &NL,
    };
    format!("{} {} {}", day.day(), months[day.month0() as usize], day.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(language: Language, regime: Regime) -> (OutgoingEmail, VerificationToken, RequestId) {
        let to = EmailAddress::parse("person@example.com").unwrap();
        let token = VerificationToken::generate();
        let id = RequestId::generate();
        let email = Templates::new()
            .verification(&VerificationEmail {
                to: &to,
                language,
                request_id: id,
                kind: RequestKind::Access,
                regime,
                received_on: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
                due_on: NaiveDate::from_ymd_opt(2026, 12, 28).unwrap(),
                token: &token,
                valid_hours: 24,
                public_base_url: "https://privacy.example.com",
            })
            .unwrap();
        (email, token, id)
    }

    #[test]
    fn english_email_has_the_link_the_code_and_the_due_date() {
        let (email, token, id) = render(Language::En, Regime::Gdpr);
        let link =
            format!("https://privacy.example.com/verify#request_id={id}&token={}", token.expose_secret());
        assert_eq!(email.subject, "Confirm your privacy request");
        assert!(email.text.contains(&link), "{}", email.text);
        assert!(email.html.contains(&link.replace('&', "&amp;")), "{}", email.html);
        for body in [&email.text, &email.html] {
            assert!(body.contains("28 December 2026"));
            assert!(body.contains("access to your personal data"));
            assert!(body.contains("GDPR"));
            assert!(body.matches(token.expose_secret()).count() >= 2, "link and code");
        }
    }

    #[test]
    fn dutch_email_is_in_dutch() {
        let (email, _, _) = render(Language::Nl, Regime::Gdpr);
        assert_eq!(email.subject, "Bevestig uw privacyverzoek");
        for body in [&email.text, &email.html] {
            assert!(body.contains("uiterlijk op"), "{body}");
            assert!(body.contains("28 december 2026"));
            assert!(body.contains("AVG"));
            assert!(!body.contains("Once you have confirmed"));
        }
        assert!(email.html.contains("<html lang=\"nl\">"));
    }

    #[test]
    fn ccpa_email_cites_the_45_days() {
        let (email, _, _) = render(Language::En, Regime::Ccpa);
        assert!(email.text.contains("45 days after we received it, as the CCPA requires"));
    }

    #[test]
    fn every_kind_has_a_label_in_every_language() {
        for kind in RequestKind::ALL {
            for language in [Language::En, Language::Nl] {
                assert!(!kind_label(kind, language).is_empty());
            }
        }
        assert_ne!(
            kind_label(RequestKind::Deletion, Language::En),
            kind_label(RequestKind::Deletion, Language::Nl)
        );
    }

    #[test]
    fn long_dates_use_the_language_month_names() {
        let d = NaiveDate::from_ymd_opt(2028, 2, 29).unwrap();
        assert_eq!(long_date(d, Language::En), "29 February 2028");
        assert_eq!(long_date(d, Language::Nl), "29 februari 2028");
    }
}
