//! The whole stack in memory: the real handlers over the in-memory store, mailer and queue, with
//! the test's clock. For what the handlers decide (answers, validation, flows); what only
//! DynamoDB, SES or S3 can show stays with [`super::Stack`] and the emulator.

use std::sync::Arc;

use devstack::mailbox::{Destinations, SentMail};
use privacy_shared::domain::RequestId;
use privacy_shared::mail::MemoryMailer;
use privacy_shared::mail::templates::Templates;
use privacy_shared::store::MemoryStore;
use privacy_shared::{Config, Deps, Env, ManualClock, MemoryDeps};

use super::{CONFIGURATION_SET, MAIL_FROM, PUBLIC_BASE_URL, STATUS_LINK_KEY, start_time};

pub type LocalVerifier = verify::Verifier<MemoryStore, MemoryMailer>;
pub type LocalAdmin = admin::Admin<MemoryStore>;

pub struct Local {
    pub store: MemoryStore,
    pub mailer: MemoryMailer,
    pub clock: Arc<ManualClock>,
    env: Vec<(String, String)>,
}

impl Local {
    pub fn new() -> Local {
        Local::with_env(&[])
    }

    /// A stack whose functions see these extra environment settings.
    pub fn with_env(extra: &[(&str, &str)]) -> Local {
        let mut env: Vec<(String, String)> = [
            ("TABLE_NAME", "requests-in-memory"),
            ("MAIL_FROM", MAIL_FROM),
            ("SES_CONFIGURATION_SET", CONFIGURATION_SET),
            ("PUBLIC_BASE_URL", PUBLIC_BASE_URL),
            ("STATUS_LINK_KEY", STATUS_LINK_KEY),
            ("BUSINESS_TIME_ZONE", "Europe/Amsterdam"),
            ("BUSINESS_HOLIDAYS", "2026-12-25,2026-12-26"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Local {
            store: MemoryStore::new(),
            mailer: MemoryMailer::new(),
            clock: Arc::new(ManualClock::new(start_time())),
            env,
        }
    }

    pub fn config(&self) -> Config {
        let pairs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Config::load(&Env::from_pairs(&pairs)).expect("test configuration is valid")
    }

    /// The functions' wiring; every copy shares this stack's store and outbox.
    pub fn deps(&self) -> MemoryDeps {
        Deps {
            store: self.store.clone(),
            mailer: self.mailer.clone(),
            clock: self.clock.clone(),
            config: self.config(),
            templates: Templates::new(),
        }
    }

    pub fn verifier(&self) -> LocalVerifier {
        verify::Verifier::new(self.deps())
    }

    /// The staff API as deployed: IAM only.
    pub fn staff_api(&self) -> LocalAdmin {
        admin::Admin::new(self.store.clone(), self.clock.clone(), &self.config(), admin::Authentication::Iam)
    }

    /// Submits and verifies a request through the real handlers; returns its id.
    pub async fn verified_request(&self, address: &str, kind: &str, region: &str) -> RequestId {
        let (status, _) = super::submit(&self.deps(), &super::submission(address, kind, region)).await;
        assert_eq!(status, 202);
        let mails = self.mail_to(address).await;
        let (id, token) = super::link_parts(mails.last().expect("a verification email"));
        assert_eq!(super::verify_with(&self.verifier(), &id, &token).await.0, 200);
        RequestId::parse(&id).unwrap()
    }

    /// What was sent to this address, as the emulator's mailbox would show it.
    pub async fn mail_to(&self, address: &str) -> Vec<SentMail> {
        self.mailer
            .sent_to(address)
            .into_iter()
            .enumerate()
            .map(|(i, mail)| SentMail {
                id: i.to_string(),
                source: MAIL_FROM.to_owned(),
                destinations: Destinations { to_addresses: vec![mail.to.as_str().to_owned()] },
                subject: mail.subject,
                body: mail.html,
            })
            .collect()
    }
}
