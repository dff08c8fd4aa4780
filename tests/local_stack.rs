//! The local stack is built from the deployed stack's template: what the emulator holds after
//! provisioning is what the template declares, so local and deployed cannot drift.

use crate::support::*;
use devstack::template::{self, Template};
use privacy_shared::store::DUE_INDEX;

#[tokio::test]
async fn the_provisioned_table_matches_the_template() {
    let stack = Stack::new().await;
    let spec = Template::load(&template::default_path()).unwrap().the_table().unwrap();
    let table = stack.dynamo.describe_table().table_name(&stack.table).send().await.unwrap().table.unwrap();

    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
        .collect();
    let declared: Vec<(String, String)> =
        spec.key_schema.iter().map(|k| (k.attribute_name.clone(), k.key_type.clone())).collect();
    assert_eq!(keys, declared);

    let stream = table.stream_specification().expect("stream enabled");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        spec.stream_specification.as_ref().map(|s| s.stream_view_type.as_str())
    );
    assert_eq!(stream.stream_view_type().map(|v| v.as_str()), Some("NEW_AND_OLD_IMAGES"));

    let indexes: Vec<(String, Vec<String>, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap_or_default().to_owned(),
                g.key_schema().iter().map(|k| k.attribute_name().to_owned()).collect(),
                g.projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let declared: Vec<(String, Vec<String>, String)> = spec
        .global_secondary_indexes
        .iter()
        .map(|g| {
            (
                g.index_name.clone(),
                g.key_schema.iter().map(|k| k.attribute_name.clone()).collect(),
                g.projection.projection_type.clone(),
            )
        })
        .collect();
    assert_eq!(indexes, declared);
    assert!(indexes.iter().any(|(name, _, _)| name == DUE_INDEX), "the code's index name is the template's");

    let ttl = stack.dynamo.describe_time_to_live().table_name(&stack.table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(
        ttl.attribute_name(),
        spec.time_to_live_specification.as_ref().map(|t| t.attribute_name.as_str())
    );
}

#[tokio::test]
async fn the_provisioned_export_bucket_matches_the_template() {
    let (sdk, _) = emulator_sdk().await;
    let s3 = devstack::provision::s3_client(&sdk);
    let name = format!("exports-{}", uuid::Uuid::new_v4().simple());
    let spec = Template::load(&template::default_path()).unwrap().bucket("ExportBucket").unwrap();
    devstack::provision::create_bucket(&s3, &name).await.unwrap();
    devstack::provision::configure_bucket(&s3, &name, &spec).await.unwrap();

    // Versioning, observed (moto's GetBucketVersioning reply has a root element the SDK rejects).
    for body in ["one", "two"] {
        s3.put_object()
            .bucket(&name)
            .key("probe")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let versions = s3.list_object_versions().bucket(&name).send().await.unwrap();
    assert_eq!(spec.versioning_configuration.as_ref().map(|v| v.status.as_str()), Some("Enabled"));
    assert_eq!(versions.versions().len(), 2, "both writes are kept as versions");
    let rules = s3.get_bucket_lifecycle_configuration().bucket(&name).send().await.unwrap();
    let local: Vec<(Option<String>, Option<i32>)> = rules
        .rules()
        .iter()
        .map(|r| (r.id().map(str::to_owned), r.expiration().and_then(|e| e.days())))
        .collect();
    let declared: Vec<(Option<String>, Option<i32>)> = spec
        .lifecycle_configuration
        .as_ref()
        .unwrap()
        .rules
        .iter()
        .map(|r| (Some(r.id.clone()), r.expiration_in_days))
        .collect();
    assert_eq!(local, declared);
    assert_eq!(declared[0].1, Some(30), "exports expire after the ExportRetentionDays default");
    let block = s3.get_public_access_block().bucket(&name).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));
}

#[tokio::test]
async fn the_provisioned_queues_match_the_template() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let (sdk, _) = emulator_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let template = Template::load(&template::default_path()).unwrap();
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let created = devstack::provision::create_queues(&sqs, &template, &prefix).await.unwrap();
    let specs = template.queues().unwrap();
    assert_eq!(created.len(), specs.len());
    assert!(specs.iter().any(|q| q.logical_id == "ExportQueue" && q.fifo && q.redrive.is_some()));
    let erasure =
        specs.iter().find(|q| q.logical_id == "ErasureQueue").expect("the template has ErasureQueue");
    assert!(erasure.fifo);
    assert_eq!(erasure.redrive, Some(("ErasureDeadLetterQueue".to_owned(), 5)));
    assert!(specs.iter().any(|q| q.logical_id == "ErasureDeadLetterQueue" && q.fifo && q.redrive.is_none()));

    for spec in &specs {
        let url = &created.iter().find(|(id, _)| *id == spec.logical_id).unwrap().1;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().unwrap();
        let fifo = attributes.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true");
        assert_eq!(fifo, spec.fifo, "{}", spec.logical_id);
        let redrive: Option<serde_json::Value> =
            attributes.get(&QueueAttributeName::RedrivePolicy).map(|p| serde_json::from_str(p).unwrap());
        match &spec.redrive {
            None => assert!(redrive.is_none(), "{}", spec.logical_id),
            Some((target, receives)) => {
                let redrive = redrive.unwrap_or_else(|| panic!("{} has no redrive policy", spec.logical_id));
                let target_url = &created.iter().find(|(id, _)| id == target).unwrap().1;
                assert_eq!(
                    redrive["deadLetterTargetArn"],
                    devstack::provision::queue_arn(&sqs, target_url).await.unwrap()
                );
                assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), receives.to_string());
            }
        }
    }
}
