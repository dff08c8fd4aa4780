//! Our own house: what the functions log never carries an address, a name, free text or a token.

use std::io::Write;
use std::sync::{Arc, Mutex};

use integration_tests::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_carry_the_address_name_details_or_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The functions' own logging set-up, asked for everything.
    let subscriber = privacy_shared::telemetry::subscriber(move || writer.clone(), Some("trace"), true);
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = Stack::new().await;
    let deps = stack.deps();
    let verifier = stack.verifier();
    let address = unique_address("Private.Person");
    let name = "Prudence Privatename";
    let details = "my customer number is 98765-SECRET";
    let body =
        json!({"email": address, "kind": "deletion", "region": "US-CA", "name": name, "details": details});
    assert_eq!(submit(&deps, &body.to_string()).await.0, 202);
    assert_eq!(submit(&deps, &body.to_string()).await.0, 202);
    for kind in ["access", "portability", "objection"] {
        submit(&deps, &json!({"email": address, "kind": kind, "region": "US-CA"}).to_string()).await;
    }
    let unknown_field = json!({"email": address, "kind": "access", "region": "NL", address.clone(): name});
    assert_eq!(submit(&deps, &unknown_field.to_string()).await.0, 422);

    let mails = stack.mail_to(&address).await;
    let (id, token) = link_parts(mails.last().unwrap());
    for _ in 0..5 {
        verify_with(&verifier, &id, &"A".repeat(43)).await;
    }
    // The repeat of the deletion request replaced the first link with the second.
    let (deletion_id, deletion_token) = link_parts(&mails[1]);
    assert_eq!(verify_with(&verifier, &deletion_id, &deletion_token).await.0, 200);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request submitted"), "the functions did log: {logs}");
    assert!(logs.contains("verification email held back"), "{logs}");
    assert!(logs.contains("locked after too many wrong tokens"), "{logs}");
    assert!(logs.contains("request verified"), "{logs}");
    for secret in [
        address.as_str(),
        &address.to_lowercase(),
        "Prudence",
        "Privatename",
        "98765",
        &token,
        &deletion_token,
    ] {
        assert!(!logs.contains(secret), "the logs carry {secret:?}:\n{logs}");
    }
}
