//! The whole journey a requester makes, in a real headless Chromium, through the local API
//! Gateway (`devstack gateway`, the template's routes) in front of every HTTP function, on the
//! emulator, each function under its own role and the event functions driven by the pump: the
//! start page -> the form -> the verification mail (read from the emulator's mailbox) -> the
//! confirm button -> dispatch and export -> the completion mail's status link -> the status page
//! -> the download button -> the ZIP in the browser's download folder.

use anyhow::{Result, bail};
use fantoccini::Locator;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

use crate::gateway::{start_gateway, through_lambda_http};
use crate::rights::world;
use crate::support::browser::{Browser, Options, workspace_root};
use crate::support::*;
use devstack::pump::Invoker;
use privacy_shared::domain::{Event, RequestId, Status, export_key};
use privacy_shared::store::{DynamoStore, Requests};

/// The public API's functions, in-process, each signing with its own role.
struct PublicFunctions {
    intake: privacy_shared::AwsDeps,
    verifier: AwsVerifier,
    downloads: download::Downloads<DynamoStore>,
}

impl Invoker for PublicFunctions {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        match function {
            "intake" => through_lambda_http(payload, |r| intake::handle(&self.intake, r)).await,
            "verify" => through_lambda_http(payload, |r| verify::handle(&self.verifier, r)).await,
            "download" => through_lambda_http(payload, |r| download::handle(&self.downloads, r)).await,
            other => bail!("no public function {other}"),
        }
    }
}

/// A link of the newest mail to `address` that starts with `prefix`, pointed at `base`.
async fn emailed_link(world: &crate::rights::World, address: &str, prefix: &str, base: &str) -> String {
    let mail = world.stack.mail_to(address).await.pop().expect("a mail");
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.starts_with(&format!("{PUBLIC_BASE_URL}{prefix}")))
        .unwrap_or_else(|| panic!("the mail {:?} links to {prefix}", mail.subject));
    link.replacen(PUBLIC_BASE_URL, base, 1)
}

/// Waits until the browser saves (or began saving: `*.crdownload`) a file named `name` in `dir`.
async fn started_download(dir: &Path, name: &str) {
    for _ in 0..200 {
        let saving = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .any(|file| file == name || file == format!("{name}.crdownload"));
        if saving {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser saved no {name} into {}", dir.display());
}

#[tokio::test]
async fn a_person_asks_confirms_follows_their_request_and_downloads_their_data_all_in_the_browser() {
    let mut world = world().await;
    let s3 = devstack::provision::s3_client(&world.download.sdk);
    let functions = PublicFunctions {
        intake: world.intake.deps(),
        verifier: world.verify.verifier(),
        downloads: download::Downloads {
            store: world.download.deps().store,
            s3,
            bucket: world.bucket.clone(),
            clock: world.stack.clock.clone(),
            status: download::StatusPages::from_config(&world.stack.config()),
        },
    };
    let base = start_gateway(functions).await;
    let downloads =
        workspace_root().join("target").join("pages").join(format!("downloads-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&downloads).unwrap();
    let browser = Browser::open(Options::default().saving_downloads_in(downloads.clone())).await;

    // The start page, the right, the form.
    browser.goto(&format!("{base}/privacy?lang=en")).await;
    browser.client.find(Locator::Css("#region")).await.unwrap().select_by_value("NL").await.unwrap();
    browser.client.find(Locator::Css("form.region button")).await.unwrap().click().await.unwrap();
    browser.shown(".rights").await;
    browser
        .client
        .find(Locator::Css(".rights a[href^='/privacy/access']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let address = unique_address("journey-browser");
    browser.shown("#request-form").await;
    browser.client.find(Locator::Css("#email")).await.unwrap().send_keys(&address).await.unwrap();
    browser
        .client
        .find(Locator::Css("#request-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(browser.shown("#result").await.contains("Check your mailbox"));
    browser.screenshot("journey-1-sent").await;

    // The verification mail, as the emulator received it; the page, the button.
    let confirm = emailed_link(&world, &address, "/verify?", &base).await;
    let id =
        RequestId::parse(confirm.split("request_id=").nth(1).unwrap().split('&').next().unwrap()).unwrap();
    browser.goto(&confirm).await;
    browser.shown("#summary:not([hidden])").await;
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::PendingVerification, "opening the link changed nothing");
    browser.screenshot("journey-2-confirm").await;
    browser.client.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    browser.shown("#status.verified").await;

    // Dispatch triages it, export writes the ZIP, dispatch mails the answer.
    world.drain().await;
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);

    // The status link of the completion mail; the page; the download button.
    let status = emailed_link(&world, &address, "/status?", &base).await;
    browser.goto(&status).await;
    browser.shown("#r-download:not([hidden])").await;
    assert_eq!(browser.text("#r-status").await, "Done");
    browser.assert_accessible("journey-3-status").await;
    browser.client.find(Locator::Css("#r-buttons button")).await.unwrap().click().await.unwrap();
    // The browser followed the button's redirect to the export and began saving it under its
    // own name. (Headless Chromium here then holds a download from a plain-HTTP origin at 0
    // bytes; the bytes are checked at the bucket below.)
    let saving = format!("privacy-export-{id}.zip");
    started_download(&downloads, &saving).await;
    let trail = world.stack.deps().store.audit_trail(id).await.unwrap();
    assert!(trail.iter().any(|e| e.event == Event::Downloaded), "the download is audited");
    let s3 = devstack::provision::s3_client(&world.stack.sdk);
    let object = s3.get_object().bucket(&world.bucket).key(export_key(id, None)).send().await.unwrap();
    let zip = object.body.collect().await.unwrap().into_bytes().to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert!(archive.by_name("data.json").is_ok(), "the export's data.json is what was offered");
    browser.quit().await;
    let _ = std::fs::remove_dir_all(&downloads);
}
