//! The export's readable overview as the person opens it: the ZIP unpacked, `index.html`
//! opened from disk (`file://`) in headless Chromium, in Dutch and in English, checked by
//! axe-core at WCAG 2.1 AA, and kept as a screenshot for review (`target/pages/export-index-nl.png`,
//! `-en.png`).

use std::io::Read;
use std::path::Path;

use privacy_shared::domain::{Language, RequestKind};

use crate::exports::{download, verified_quietly_from, world};
use crate::support::browser::{Browser, Options};

/// Every entry of the archive written under `dir`, as an unzip tool would.
fn unzip(bytes: Vec<u8>, dir: &Path) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the export is a valid ZIP");
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let path = dir.join(entry.enclosed_name().expect("every entry stays inside the folder"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

struct Case {
    address: &'static str,
    region: &'static str,
    language: Language,
    /// The browser's preferred languages.
    prefers: &'static str,
    screenshot: &'static str,
    title: &'static str,
    summary: &'static str,
    pseudonym: &'static str,
}

#[tokio::test]
async fn the_unpacked_overview_reads_in_the_persons_language_and_is_accessible_in_a_browser() {
    let world = world().await;
    let cases = [
        Case {
            address: "alice@example.com",
            region: "NL",
            language: Language::Nl,
            prefers: "nl-NL,nl",
            screenshot: "export-index-nl",
            title: "Uw persoonsgegevens",
            summary: "In het kort",
            pseudonym: "deelnemer 2",
        },
        Case {
            address: "bob@example.com",
            region: "US-CA",
            language: Language::En,
            prefers: "en-US,en",
            screenshot: "export-index-en",
            title: "Your personal data",
            summary: "In short",
            pseudonym: "participant 2",
        },
    ];
    for case in cases {
        // Verified through the store: other tests mail the sample people at the same time.
        let job =
            verified_quietly_from(&world, case.address, RequestKind::Access, case.region, case.language)
                .await;
        export::export(&world.exporter, &job).await.unwrap();
        let dir = std::env::temp_dir().join(format!("export-{}", uuid::Uuid::new_v4().simple()));
        unzip(download(&world, job.request_id).await, &dir);

        let browser = Browser::open(Options::preferring(case.prefers)).await;
        browser.goto(&format!("file://{}", dir.join("index.html").display())).await;
        assert_eq!(browser.shown("h1").await, case.title);
        assert_eq!(browser.shown("#summary").await, case.summary, "the summary comes first");
        let body = browser.text("body").await;
        assert!(body.contains(case.pseudonym), "{}: other people are numbered", case.screenshot);
        // The recording the index links is there, beside it.
        let href =
            browser.script("return document.querySelector('a[href^=\"files/\"]').getAttribute('href')").await;
        assert!(dir.join(href.as_str().expect("a recording is linked")).exists(), "{href}");
        browser.assert_accessible(case.screenshot).await;
        browser.quit().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
