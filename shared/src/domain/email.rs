use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A syntactically valid, deliverable-looking email address. The original spelling is kept for
/// sending; a normalised form (lower case) is used for matching the same person across requests.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    original: String,
    normalized: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than 254 characters")]
    TooLong,
    #[error("email is not a valid address")]
    Invalid,
}

/// A stable, non-reversible-at-a-glance key for "this person" in our own table: the SHA-256 of
/// the normalised address. Lets us find a person's open requests without indexing addresses.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubjectKey(String);

impl SubjectKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(value: String) -> SubjectKey {
        SubjectKey(value)
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectKey({}…)", &self.0[..8.min(self.0.len())])
    }
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<EmailAddress, EmailError> {
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > 254 {
            return Err(EmailError::TooLong);
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(EmailError::Invalid);
        }
        let parsed = email_address::EmailAddress::from_str(input).map_err(|_| EmailError::Invalid)?;
        let domain = parsed.domain();
        // Bracketed IP literals, dotless hosts and display-name forms are valid RFC 5322 but
        // never where a requester reads mail.
        if parsed.as_str() != input
            || domain.starts_with('[')
            || !domain.contains('.')
            || domain.ends_with('.')
            || domain
                .split('.')
                .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
        {
            return Err(EmailError::Invalid);
        }
        Ok(EmailAddress { original: input.to_owned(), normalized: input.to_lowercase() })
    }

    /// The address as the requester typed it: use for sending.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The address as used for matching one person across requests and sources.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn subject_key(&self) -> SubjectKey {
        let digest = Sha256::digest(format!("subject:{}", self.normalized).as_bytes());
        SubjectKey(hex::encode(digest))
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.original
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_original_and_matches_on_the_lower_case_form() {
        let a = EmailAddress::parse("Alice.Smith@Example.COM").unwrap();
        let b = EmailAddress::parse("alice.smith@example.com").unwrap();
        assert_eq!(a.as_str(), "Alice.Smith@Example.COM");
        assert_eq!(a.normalized(), "alice.smith@example.com");
        assert_eq!(a.subject_key(), b.subject_key());
        assert_ne!(a.subject_key(), EmailAddress::parse("bob@example.com").unwrap().subject_key());
    }

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["a@b.co", "first.last+tag@sub.example.nl", "o'brien@example.ie", "x_y-z@ex-ample.org"] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_a_requester_address() {
        let too_long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@[127.0.0.1]",
            "a b@example.com",
            " a@example.com",
            "a@example.com\r\nBcc: x@evil.test",
            "a@example.com\n",
            "Alice <a@example.com>",
            "a@example..com",
            "a@-example.com",
            "a@example.com.",
            too_long.as_str(),
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_address() {
        let e = EmailAddress::parse("secret.person@example.com").unwrap();
        let shown = format!("{e:?} {:?}", e.subject_key());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("example"), "{shown}");
    }
}
