//! Every message as a mail client shows it: the HTML of each, in English and Dutch (the samples
//! of `make mail-preview`), opened in headless Chromium, read for its language, title and footer,
//! and checked by axe-core at WCAG 2.1 AA. Each is kept as a screenshot for review
//! (`target/pages/mail-<lang>-<message>.png`).

use crate::support::browser::{Browser, Options};

#[tokio::test]
async fn every_message_opens_in_a_browser_in_its_language_with_the_footer_and_is_accessible() {
    let dir = std::env::temp_dir().join(format!("mail-{}", uuid::Uuid::new_v4().simple()));
    let written = devstack::mail_preview::write_all(&dir).unwrap();
    assert!(written.len() > 50, "both languages of every message: {}", written.len());
    let browser = Browser::open(Options::preferring("en")).await;
    for message in &written {
        let lang = message.language.as_str();
        let shot = format!("mail-{lang}-{}", message.html.file_stem().unwrap().to_string_lossy());
        browser.goto(&format!("file://{}", message.html.display())).await;
        assert_eq!(browser.script("return document.documentElement.lang").await, lang, "{shot}");
        assert_eq!(browser.script("return document.title").await, message.email.subject.as_str(), "{shot}");
        let body = browser.text("body").await;
        assert!(body.contains("privacy@lifesize.com") && body.contains("Lifesize, Inc."), "{shot}: {body}");
        browser.assert_accessible(&shot).await;
    }
    browser.quit().await;
    let _ = std::fs::remove_dir_all(&dir);
}
