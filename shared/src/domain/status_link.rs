//! The "where is my request" link in every email to a requester (or their agent). Its token is
//! derived, not stored: HMAC-SHA256 under one secret key of the request id and who the link is
//! for. Intake, dispatch and the reminders can then put the link in any mail without a write,
//! and nothing a table dump shows opens a status page. The key is the one secret: whoever holds
//! it can open every request's status, so it lives in Secrets Manager, never in a log.
//!
//! A token is 256 bits, so guessing one is hopeless and no attempt counter is needed (a counter
//! would let a stranger lock a person out of their own status page).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

use super::{Language, RequestId};

/// The shortest key accepted: 32 characters of a generated secret carry well over 128 bits.
pub const MIN_KEY_CHARS: usize = 32;

/// The secret status tokens are derived with (`STATUS_LINK_KEY`).
#[derive(Clone)]
pub struct StatusKey(Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at least {MIN_KEY_CHARS} characters")]
pub struct ShortStatusKey;

/// Whom a status link was given to: the person, or an agent acting for them. The agent is told
/// of progress but never receives the person's data, so its link never offers the download.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    Requester,
    Agent,
}

impl Audience {
    pub const ALL: [Audience; 2] = [Audience::Requester, Audience::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Requester => "requester",
            Audience::Agent => "agent",
        }
    }
}

/// A status token: base64url without padding of 32 bytes (43 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct StatusToken(String);

impl StatusToken {
    /// For building the link only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StatusToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusToken(<redacted>)")
    }
}

impl fmt::Debug for StatusKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusKey(<redacted>)")
    }
}

impl StatusKey {
    pub fn parse(secret: &str) -> Result<StatusKey, ShortStatusKey> {
        if secret.chars().count() < MIN_KEY_CHARS {
            return Err(ShortStatusKey);
        }
        Ok(StatusKey(secret.as_bytes().to_vec()))
    }

    /// The token of `id`'s status link for `audience`.
    pub fn token(&self, id: RequestId, audience: Audience) -> StatusToken {
        StatusToken(URL_SAFE_NO_PAD.encode(self.mac(id, audience)))
    }

    fn mac(&self, id: RequestId, audience: Audience) -> [u8; 32] {
        // HMAC takes a key of any length; new_from_slice cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(format!("privacy-status/v1/{}/{id}", audience.as_str()).as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whom the presented token was given to, if it is one of `id`'s. Both audiences are always
    /// computed and compared in constant time, so neither the time taken nor the answer says how
    /// close a guess came or which audience it tried.
    pub fn audience_of(&self, id: RequestId, presented: &str) -> Option<Audience> {
        let mut found = None;
        for audience in Audience::ALL {
            let expected = self.token(id, audience);
            if bool::from(expected.0.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(audience);
            }
        }
        found
    }

    /// `{public_base_url}/status?lang=xx#<id>.<token>`: the secret stays in the fragment, which
    /// a browser never sends to a server (so it is in no access log either).
    pub fn link(
        &self,
        public_base_url: &str,
        id: RequestId,
        audience: Audience,
        language: Language,
    ) -> String {
        format!(
            "{}/status?lang={}#{id}.{}",
            public_base_url.trim_end_matches('/'),
            language.as_str(),
            self.token(id, audience).expose_secret()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StatusKey {
        StatusKey::parse("an-example-status-link-key-of-48-characters-long").unwrap()
    }

    #[test]
    fn a_key_shorter_than_32_characters_is_refused() {
        assert_eq!(StatusKey::parse(&"k".repeat(31)).unwrap_err(), ShortStatusKey);
        assert!(StatusKey::parse(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn the_token_is_the_hmac_of_the_audience_and_the_request_id() {
        let id = RequestId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        let key = StatusKey::parse(&"k".repeat(32)).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice("k".repeat(32).as_bytes()).unwrap();
        mac.update(b"privacy-status/v1/requester/0f8fad5b-d9cb-469f-a165-70867728950e");
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(key.token(id, Audience::Requester).expose_secret(), expected);
        assert_eq!(expected.len(), 43, "256 bits");
    }

    #[test]
    fn the_link_carries_the_id_and_token_in_the_fragment_only() {
        let id = RequestId::generate();
        let link = key().link("https://privacy.example.com/", id, Audience::Requester, Language::Nl);
        let token = key().token(id, Audience::Requester);
        assert_eq!(
            link,
            format!("https://privacy.example.com/status?lang=nl#{id}.{}", token.expose_secret())
        );
        let (before, after) = link.split_once('#').unwrap();
        assert!(!before.contains(token.expose_secret()) && !before.contains(&id.to_string()));
        assert_eq!(key().audience_of(id, after.split_once('.').unwrap().1), Some(Audience::Requester));
    }

    #[test]
    fn another_key_opens_nothing() {
        let id = RequestId::generate();
        let other = StatusKey::parse("another-status-link-key-of-at-least-32-chars").unwrap();
        assert_eq!(other.audience_of(id, key().token(id, Audience::Requester).expose_secret()), None);
        assert_eq!(key().audience_of(id, ""), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = RequestId> {
        any::<u128>()
            .prop_map(|n| RequestId::parse(&uuid::Uuid::from_u128(n).hyphenated().to_string()).unwrap())
    }

    fn key() -> impl Strategy<Value = (String, StatusKey)> {
        "[A-Za-z0-9]{32,64}".prop_map(|secret| (secret.clone(), StatusKey::parse(&secret).unwrap()))
    }

    fn audience() -> impl Strategy<Value = Audience> {
        prop_oneof![Just(Audience::Requester), Just(Audience::Agent)]
    }

    proptest! {
        #[test]
        fn a_token_opens_its_own_request_for_its_own_audience_only(
            (_, key) in key(), a in id(), b in id(), audience in audience()
        ) {
            let token = key.token(a, audience);
            prop_assert_eq!(key.audience_of(a, token.expose_secret()), Some(audience));
            if a != b {
                prop_assert_eq!(key.audience_of(b, token.expose_secret()), None);
            }
        }

        #[test]
        fn the_agents_token_is_never_the_requesters((_, key) in key(), id in id()) {
            let agent = key.token(id, Audience::Agent);
            prop_assert_ne!(&agent, &key.token(id, Audience::Requester));
            prop_assert_eq!(key.audience_of(id, agent.expose_secret()), Some(Audience::Agent));
        }

        #[test]
        fn debug_never_shows_the_key_or_a_token((secret, key) in key(), id in id(), audience in audience()) {
            let token = key.token(id, audience);
            let shown = format!("{key:?} {token:?}");
            prop_assert!(!shown.contains(&secret));
            prop_assert!(!shown.contains(token.expose_secret()));
        }

        #[test]
        fn any_presented_text_is_answered_without_a_panic((_, key) in key(), id in id(), presented in any::<String>()) {
            let _ = key.audience_of(id, &presented);
        }
    }
}
