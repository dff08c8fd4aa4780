use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// A syntactically valid address SES can deliver to. The spelling as typed is kept for sending
/// (with an internationalised domain in punycode); a normalised form (lower case) is used for
/// matching the same person across requests.
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

/// What SES accepts: a 7-bit ASCII local part and, for an internationalised domain, its punycode
/// form. Storing anything else would give a request whose every email bounces in dispatch.
const MAX_ADDRESS_LEN: usize = 254;
/// A bound on the work done before conversion; the real limit applies to the converted form.
const MAX_INPUT_LEN: usize = 4 * MAX_ADDRESS_LEN;

impl EmailAddress {
    /// Parses an address as typed. The domain goes through UTS-46 (the IDNA processing browsers
    /// and mail clients use): `bücher.example` becomes `xn--bcher-kva.example`, which is what is
    /// kept, sent to and matched on; an invalid IDN is refused. Every limit applies to that form.
    pub fn parse(input: &str) -> Result<EmailAddress, EmailError> {
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(EmailError::TooLong);
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(EmailError::Invalid);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(EmailError::Invalid)?;
        // SMTPUTF8 mailboxes exist, but SES cannot deliver to them.
        if !local.is_ascii() || domain.starts_with('[') {
            return Err(EmailError::Invalid);
        }
        let ascii_domain = Uts46::new()
            .to_ascii(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Ignore)
            .map_err(|_| EmailError::Invalid)?;
        // An ASCII domain keeps its spelling (UTS-46 would only lower-case it).
        let sendable = if domain.is_ascii() { input.to_owned() } else { format!("{local}@{ascii_domain}") };
        if sendable.len() > MAX_ADDRESS_LEN {
            return Err(EmailError::TooLong);
        }
        let parsed = email_address::EmailAddress::from_str(&sendable).map_err(|_| EmailError::Invalid)?;
        // Dotless hosts and display-name forms are valid RFC 5322 but never where a requester
        // reads mail; DNS holds no label over 63 characters.
        if parsed.as_str() != sendable
            || !ascii_domain.contains('.')
            || ascii_domain.ends_with('.')
            || ascii_domain.split('.').any(|label| {
                label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-')
            })
        {
            return Err(EmailError::Invalid);
        }
        Ok(EmailAddress { normalized: sendable.to_ascii_lowercase(), original: sendable })
    }

    /// The address as the requester typed it, an internationalised domain in its punycode form:
    /// use for sending. Always 7-bit ASCII.
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
    fn the_local_part_must_be_plain_ascii_because_ses_cannot_deliver_anything_else() {
        for bad in ["jösé@example.com", "用户@example.com", "a\u{00A0}b@example.com", "ｕser@example.com"]
        {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn an_internationalised_domain_is_sent_to_its_punycode_form() {
        let e = EmailAddress::parse("User@Bücher.example").unwrap();
        assert_eq!(e.as_str(), "User@xn--bcher-kva.example");
        assert_eq!(e.normalized(), "user@xn--bcher-kva.example");
        assert!(e.as_str().is_ascii());
        // The same person however the domain is spelt: Unicode, upper case, or already punycode.
        for same in ["user@BÜCHER.example", "user@xn--bcher-kva.example", "USER@XN--BCHER-KVA.EXAMPLE"] {
            assert_eq!(EmailAddress::parse(same).unwrap().subject_key(), e.subject_key(), "{same}");
        }
        assert_eq!(EmailAddress::parse("a@例え.jp").unwrap().as_str(), "a@xn--r8jz45g.jp");
    }

    #[test]
    fn a_domain_that_is_no_valid_idn_is_refused() {
        for bad in [
            "a@xn--a.example",          // not valid punycode
            "a@xn--bcher-kva-.example", // trailing hyphen in the encoded label
            "a@bü\u{FFFD}cher.example", // a code point IDNA disallows
            "a@exa_mple.com",           // not a host name
            "a@a\u{05D0}b.example",     // breaks the bidi rule
            "a@bücher.",
            "a@bücher",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn length_limits_apply_to_the_form_that_is_sent() {
        // Each label is 10 bytes as typed and 16 as punycode (xn--abcdefgh-e6a).
        let domain = ["abcdefghü"; 20].join(".");
        let input = format!("a@{domain}.example");
        assert!(input.len() <= 254, "fits as typed: {}", input.len());
        assert_eq!(EmailAddress::parse(&input), Err(EmailError::TooLong));
        // 30 characters as typed, 72 once encoded: more than a DNS label holds.
        let label: String = (0..30).filter_map(|i| char::from_u32(0x4E00 + i * 37)).collect();
        assert_eq!(label.chars().count(), 30);
        assert_eq!(EmailAddress::parse(&format!("a@{label}.example")), Err(EmailError::Invalid));
        let local = "l".repeat(65);
        assert!(EmailAddress::parse(&format!("{local}@bücher.example")).is_err());
        let longest = format!("{}@{}.example", "l".repeat(64), ["bücher"; 10].join("."));
        assert!(EmailAddress::parse(&longest).is_ok_and(|e| e.as_str().len() <= 254));
    }

    #[test]
    fn debug_never_prints_the_address() {
        let e = EmailAddress::parse("secret.person@example.com").unwrap();
        let shown = format!("{e:?} {:?}", e.subject_key());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("example"), "{shown}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// RFC 5322 atext, in dot-atoms of a few atoms: every local part SES takes.
    fn local_part() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,16}(\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}){0,2}"
    }

    /// A host name label that is no punycode (`xn--` labels have rules of their own).
    fn label() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?"
            .prop_filter("no A-label", |l| !l.to_ascii_lowercase().starts_with("xn--"))
    }

    fn ascii_domain() -> impl Strategy<Value = String> {
        (prop::collection::vec(label(), 1..4), "[a-zA-Z]{2,6}")
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
    }

    fn valid_address() -> impl Strategy<Value = String> {
        (local_part(), ascii_domain()).prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    /// Strings from the characters an address is made of and the ones that break it, so that
    /// random input reaches past the first checks.
    fn address_like() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'Z', '0', '.', '@', '-', '+', '_', '"', '[', ']', '(', ' ', '\r', '\n', '\0', 'ü', 'ß',
                '例', '\u{05D0}', '\u{FFFD}', '\u{00A0}', '\u{200B}', 'ｕ', '\u{0301}',
            ]),
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// Internationalised labels whose upper case maps back to the same label under UTS-46.
    fn unicode_label() -> impl Strategy<Value = String> {
        (prop::sample::select(vec!["bücher", "café", "münchen", "例え", "δοκιμή", "mañana"]), "[a-z0-9]{0,5}")
            .prop_map(|(word, tail)| format!("{word}{tail}"))
    }

    fn assert_sendable(e: &EmailAddress) -> Result<(), TestCaseError> {
        let sent = e.as_str();
        prop_assert!(sent.is_ascii());
        prop_assert!(sent.len() <= MAX_ADDRESS_LEN);
        prop_assert!(!sent.chars().any(|c| c.is_control() || c.is_whitespace()));
        prop_assert_eq!(e.normalized(), sent.to_ascii_lowercase());
        let (local, domain) = sent.rsplit_once('@').unwrap();
        prop_assert!(!local.is_empty());
        prop_assert!(domain.contains('.') && !domain.ends_with('.'));
        for label in domain.split('.') {
            prop_assert!((1..=63).contains(&label.len()), "label {:?}", label);
            prop_assert!(!label.starts_with('-') && !label.ends_with('-'));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(input in any::<String>()) {
            let _ = EmailAddress::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_any_bytes_and_json_agrees_with_parse(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&bytes);
            let parsed = EmailAddress::parse(&text);
            let json = serde_json::to_string(&text).unwrap();
            let from_json = serde_json::from_str::<EmailAddress>(&json);
            prop_assert_eq!(parsed.ok(), from_json.ok());
            let _ = serde_json::from_slice::<EmailAddress>(&bytes);
        }

        #[test]
        fn whatever_is_accepted_is_sendable_and_parses_to_itself(input in address_like()) {
            if let Ok(e) = EmailAddress::parse(&input) {
                assert_sendable(&e)?;
                prop_assert_eq!(EmailAddress::parse(e.as_str()), Ok(e.clone()));
            }
        }

        #[test]
        fn an_ordinary_address_is_accepted_as_typed(input in valid_address()) {
            let e = EmailAddress::parse(&input).map_err(|err| TestCaseError::fail(format!("{input:?}: {err}")))?;
            prop_assert_eq!(e.as_str(), input.as_str());
            assert_sendable(&e)?;
        }

        #[test]
        fn display_round_trips_through_parse_and_json(input in valid_address()) {
            let e = EmailAddress::parse(&input).unwrap();
            prop_assert_eq!(EmailAddress::parse(e.as_str()), Ok(e.clone()));
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<EmailAddress>(&json).unwrap(), e);
        }

        #[test]
        fn case_never_changes_the_person(input in valid_address()) {
            let upper = EmailAddress::parse(&input.to_ascii_uppercase()).unwrap();
            let lower = EmailAddress::parse(&input.to_ascii_lowercase()).unwrap();
            prop_assert_eq!(upper.subject_key(), lower.subject_key());
            prop_assert_eq!(upper.normalized(), lower.normalized());
        }

        #[test]
        fn an_internationalised_domain_is_sent_as_punycode_and_is_the_same_person_in_any_case(
            local in local_part(),
            labels in prop::collection::vec(unicode_label(), 1..3),
            tld in "[a-z]{2,4}",
        ) {
            let input = format!("{local}@{}.{tld}", labels.join("."));
            let e = EmailAddress::parse(&input).map_err(|err| TestCaseError::fail(format!("{input:?}: {err}")))?;
            assert_sendable(&e)?;
            prop_assert!(e.as_str().contains("xn--"));
            prop_assert_eq!(EmailAddress::parse(e.as_str()).unwrap().subject_key(), e.subject_key());
            let shouted = EmailAddress::parse(&input.to_uppercase()).unwrap();
            prop_assert_eq!(shouted.subject_key(), e.subject_key());
        }

        #[test]
        fn a_control_or_space_character_anywhere_is_invalid(
            input in valid_address(),
            at in any::<prop::sample::Index>(),
            bad in prop::sample::select(vec!['\r', '\n', '\0', '\t', ' ', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}']),
        ) {
            let mut chars: Vec<char> = input.chars().collect();
            chars.insert(at.index(chars.len() + 1), bad);
            let broken: String = chars.into_iter().collect();
            prop_assert_eq!(EmailAddress::parse(&broken), Err(EmailError::Invalid));
        }

        #[test]
        fn a_local_part_beyond_ascii_is_invalid(
            local in local_part(),
            domain in ascii_domain(),
            extra in prop::sample::select(vec!['é', 'ü', '用', 'ｕ', '\u{0301}', '😀']),
        ) {
            prop_assert_eq!(EmailAddress::parse(&format!("{local}{extra}@{domain}")), Err(EmailError::Invalid));
        }

        #[test]
        fn no_at_sign_is_invalid(input in "[a-zA-Z0-9.+-]{1,60}") {
            prop_assert_eq!(EmailAddress::parse(&input), Err(EmailError::Invalid));
        }

        #[test]
        fn longer_than_254_sent_characters_is_too_long(
            local in "[a-z]{1,64}",
            labels in prop::collection::vec("[a-z]{63}", 4..15),
        ) {
            let input = format!("{local}@{}.example", labels.join("."));
            prop_assert!(input.len() > MAX_ADDRESS_LEN);
            prop_assert_eq!(EmailAddress::parse(&input), Err(EmailError::TooLong));
        }

        #[test]
        fn input_longer_than_the_work_bound_is_too_long_whatever_it_holds(tail in "[a-z@. \r\n]{1017,1100}") {
            prop_assert_eq!(EmailAddress::parse(&tail), Err(EmailError::TooLong));
        }
    }
}
