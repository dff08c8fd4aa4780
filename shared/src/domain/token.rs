use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

const TOKEN_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const TOKEN_LEN: usize = 43;

/// A one-time verification secret: 256 bits from a CSPRNG, URL-safe.
/// It is shown to the requester once (in the email) and stored only as its SHA-256.
#[derive(Clone)]
pub struct VerificationToken(String);

impl VerificationToken {
    pub fn generate() -> VerificationToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        // ThreadRng is a ChaCha CSPRNG seeded and periodically reseeded from the OS.
        rand::rng().fill_bytes(&mut bytes);
        VerificationToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as the requester sends it back. Anything not shaped like one of ours is refused
    /// here, before any storage is read.
    pub fn parse(input: &str) -> Option<VerificationToken> {
        let well_formed = input.len() == TOKEN_LEN
            && input.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(input).is_ok_and(|b| b.len() == TOKEN_BYTES);
        well_formed.then(|| VerificationToken(input.to_owned()))
    }

    /// For building the email only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationToken(<redacted>)")
    }
}

/// The SHA-256 of a token: what the table holds.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of any other secret we only compare (a configured key, say).
    pub fn of_secret(secret: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(stored: &str) -> Option<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(stored, &mut out).ok()?;
        Some(TokenHash(out))
    }

    /// Constant-time, so the time a comparison takes says nothing about how much matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_url_safe_unique_and_carry_256_bits() {
        let a = VerificationToken::generate();
        let b = VerificationToken::generate();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), TOKEN_LEN);
        assert!(a.expose_secret().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose_secret()).unwrap().len() * 8, 256);
    }

    #[test]
    fn the_hash_is_sha256_of_the_token_text() {
        let token = VerificationToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // sha256("A" * 43)
        let expected = hex::encode(Sha256::digest("A".repeat(43)));
        assert_eq!(token.hash().to_hex(), expected);
        assert_eq!(TokenHash::from_hex(&expected), Some(token.hash()));
    }

    #[test]
    fn a_hash_matches_only_its_own_token() {
        let token = VerificationToken::generate();
        let stored = TokenHash::from_hex(&token.hash().to_hex()).unwrap();
        assert!(stored.matches(&token.hash()));
        assert!(!stored.matches(&VerificationToken::generate().hash()));
    }

    #[test]
    fn parse_refuses_anything_not_shaped_like_a_token() {
        let good = VerificationToken::generate();
        assert!(VerificationToken::parse(good.expose_secret()).is_some());
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &format!("{}=", &good.expose_secret()[..42]),
            &format!("{}+", &good.expose_secret()[..42]),
            &format!("{}\n", &good.expose_secret()[..42]),
        ] {
            assert!(VerificationToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let token = VerificationToken::generate();
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains(token.expose_secret()));
        assert!(!shown.contains(&token.hash().to_hex()));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn alphabet_string(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .chars()
                    .collect::<Vec<_>>(),
            ),
            len,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(input in any::<String>()) {
            let _ = VerificationToken::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = VerificationToken::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn every_256_bit_secret_encodes_to_a_token_that_parses_to_itself(bytes in any::<[u8; 32]>()) {
            let text = URL_SAFE_NO_PAD.encode(bytes);
            let token = VerificationToken::parse(&text).expect("an encoded secret is a token");
            prop_assert_eq!(token.expose_secret(), text.as_str());
            prop_assert_eq!(URL_SAFE_NO_PAD.decode(token.expose_secret()).unwrap(), bytes.to_vec());
            prop_assert!(token.hash().matches(&VerificationToken::parse(&text).unwrap().hash()));
        }

        #[test]
        fn an_accepted_token_is_43_url_safe_characters_in_canonical_encoding(input in alphabet_string(42..45)) {
            if let Some(token) = VerificationToken::parse(&input) {
                prop_assert_eq!(input.len(), TOKEN_LEN);
                // Canonical: the bits past the 256th are zero, so one secret has one spelling.
                let bytes = URL_SAFE_NO_PAD.decode(&input).unwrap();
                prop_assert_eq!(URL_SAFE_NO_PAD.encode(bytes), token.expose_secret());
            } else if input.len() == TOKEN_LEN {
                prop_assert!(URL_SAFE_NO_PAD.decode(&input).is_err());
            }
        }

        #[test]
        fn any_other_length_is_refused(input in alphabet_string(0..100)) {
            prop_assume!(input.len() != TOKEN_LEN);
            prop_assert!(VerificationToken::parse(&input).is_none());
        }

        #[test]
        fn a_character_outside_the_url_safe_alphabet_is_refused(
            bytes in any::<[u8; 32]>(),
            at in 0..TOKEN_LEN,
            bad in any::<char>().prop_filter("outside the alphabet", |c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')),
        ) {
            let mut chars: Vec<char> = URL_SAFE_NO_PAD.encode(bytes).chars().collect();
            chars[at] = bad;
            let text: String = chars.into_iter().collect();
            prop_assert!(VerificationToken::parse(&text).is_none());
        }

        #[test]
        fn a_hash_round_trips_through_hex_and_other_text_is_no_hash(secret in any::<String>(), junk in any::<String>()) {
            let hash = TokenHash::of_secret(&secret);
            prop_assert!(TokenHash::from_hex(&hash.to_hex()).is_some_and(|h| h.matches(&hash)));
            prop_assert!(TokenHash::from_hex(&hash.to_hex().to_uppercase()).is_some_and(|h| h.matches(&hash)));
            if let Some(parsed) = TokenHash::from_hex(&junk) {
                prop_assert_eq!(junk.len(), 64);
                prop_assert_eq!(parsed.to_hex(), junk.to_ascii_lowercase());
            }
        }
    }
}
