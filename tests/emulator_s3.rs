//! S3 listings on the emulator (dev/emulator_patches.py reads a prefix's keys from a sorted index
//! of each bucket's names): what a listing returns must be what S3 returns, whatever was written
//! and deleted before it.

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use crate::support::*;

async fn bucket(s3: &aws_sdk_s3::Client, versioned: bool) -> String {
    let name = format!("listing-{}", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(s3, &name).await.unwrap();
    if versioned {
        let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        s3.put_bucket_versioning().bucket(&name).versioning_configuration(enabled).send().await.unwrap();
    }
    name
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.put_object().bucket(bucket).key(key).body(key.as_bytes().to_vec().into()).send().await.unwrap();
}

async fn delete(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.delete_object().bucket(bucket).key(key).send().await.unwrap();
}

/// Every key and folder under `prefix`, read page by page `page` at a time.
async fn listed(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    page: i32,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(page)
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap();
        names.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        names.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => break,
        }
    }
    names
}

#[tokio::test]
async fn a_listing_by_prefix_shows_exactly_the_keys_under_it_as_they_are_written_and_deleted() {
    let (sdk, _) = emulator_sdk().await;
    let s3 = devstack::provision::s3_client(&sdk);
    let bucket = bucket(&s3, false).await;
    for key in [
        "export/b/part-2.zip",
        "export/a/part-1.zip",
        "export/b/part-1.zip",
        "exports-other",
        "export/a/data.json",
        "zzz",
    ] {
        put(&s3, &bucket, key).await;
    }
    assert_eq!(
        listed(&s3, &bucket, "export/b/", None, 1000).await,
        ["export/b/part-1.zip", "export/b/part-2.zip"]
    );

    // Written and deleted after the first listing: the next one follows.
    put(&s3, &bucket, "export/b/part-3.zip").await;
    delete(&s3, &bucket, "export/b/part-1.zip").await;
    put(&s3, &bucket, "export/b/part-1.zip.bak").await;
    put(&s3, &bucket, "export/b/part-2.zip").await;
    assert_eq!(
        listed(&s3, &bucket, "export/b/", None, 1000).await,
        ["export/b/part-1.zip.bak", "export/b/part-2.zip", "export/b/part-3.zip"]
    );

    // Pages of one, with and without a delimiter, and with no prefix at all.
    assert_eq!(
        listed(&s3, &bucket, "export/", None, 1).await,
        [
            "export/a/data.json",
            "export/a/part-1.zip",
            "export/b/part-1.zip.bak",
            "export/b/part-2.zip",
            "export/b/part-3.zip"
        ]
    );
    assert_eq!(listed(&s3, &bucket, "export/", Some("/"), 1).await, ["export/a/", "export/b/"]);
    assert_eq!(listed(&s3, &bucket, "", Some("/"), 1000).await, ["exports-other", "zzz", "export/"]);
    assert_eq!(listed(&s3, &bucket, "", None, 1000).await.len(), 7);
    assert!(listed(&s3, &bucket, "export/c/", None, 1000).await.is_empty());
}

#[tokio::test]
async fn a_versioned_bucket_lists_a_deleted_key_only_once_it_is_written_again() {
    let (sdk, _) = emulator_sdk().await;
    let s3 = devstack::provision::s3_client(&sdk);
    let bucket = bucket(&s3, true).await;
    put(&s3, &bucket, "p/one").await;
    put(&s3, &bucket, "p/two").await;
    put(&s3, &bucket, "p/two").await;
    delete(&s3, &bucket, "p/one").await;
    assert_eq!(listed(&s3, &bucket, "p/", None, 1000).await, ["p/two"]);
    put(&s3, &bucket, "p/one").await;
    assert_eq!(listed(&s3, &bucket, "p/", None, 1000).await, ["p/one", "p/two"]);
}
