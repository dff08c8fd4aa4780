//! Creates the stack's resources in the emulator, from the template's definitions.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use crate::template::{BucketSpec, KeyElement, TableSpec};

fn keys(schema: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    schema
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

/// Creates `name` with the template's keys, indexes, stream and TTL. An existing table of that
/// name is left as it is.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, spec: &TableSpec) -> Result<()> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(spec.billing_mode.as_deref().unwrap_or("PAY_PER_REQUEST")))
        .set_key_schema(Some(keys(&spec.key_schema)?));
    for a in &spec.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()?,
        );
    }
    for index in &spec.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
            .set_non_key_attributes(
                (!index.projection.non_key_attributes.is_empty())
                    .then(|| index.projection.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(projection)
                .build()?,
        );
    }
    if let Some(stream) = &spec.stream_specification {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                .build()?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
            return Ok(());
        }
        Err(err) => return Err(err).with_context(|| format!("creating table {name}")),
    }
    if let Some(ttl) = spec.time_to_live_specification.as_ref().filter(|t| t.enabled) {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("enabling TTL on {name}"))?;
    }
    Ok(())
}

/// SES refuses to send from an address that is not a verified identity.
pub async fn create_mail_identity(client: &aws_sdk_sesv2::Client, address: &str) -> Result<()> {
    match client.create_email_identity().email_identity(address).send().await {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => Ok(()),
        Err(err) => Err(err).context("creating the SES identity"),
    }
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    let mut request = client.create_bucket().bucket(name);
    // Outside us-east-1, S3 wants the region named again.
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned()).filter(|r| r != "us-east-1")
    {
        request = request.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
        {
            Ok(())
        }
        Err(err) => Err(err).with_context(|| format!("creating bucket {name}")),
    }
}

/// Applies the template's versioning, lifecycle rules and public access block to a bucket.
/// (Encryption with the stack's KMS key and access logging have no local counterpart.)
pub async fn configure_bucket(client: &aws_sdk_s3::Client, name: &str, spec: &BucketSpec) -> Result<()> {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
        ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
        NoncurrentVersionExpiration, PublicAccessBlockConfiguration, VersioningConfiguration,
    };
    if let Some(versioning) = &spec.versioning_configuration {
        client
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::from(versioning.status.as_str()))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("versioning {name}"))?;
    }
    if let Some(lifecycle) = &spec.lifecycle_configuration {
        let mut rules = Vec::new();
        for rule in &lifecycle.rules {
            rules.push(
                LifecycleRule::builder()
                    .id(&rule.id)
                    .status(ExpirationStatus::from(rule.status.as_str()))
                    .filter(LifecycleRuleFilter::builder().prefix("").build())
                    .set_expiration(
                        rule.expiration_in_days.map(|days| LifecycleExpiration::builder().days(days).build()),
                    )
                    .set_noncurrent_version_expiration(rule.noncurrent_version_expiration.as_ref().map(|n| {
                        NoncurrentVersionExpiration::builder().noncurrent_days(n.noncurrent_days).build()
                    }))
                    .set_abort_incomplete_multipart_upload(
                        rule.abort_incomplete_multipart_upload.as_ref().map(|a| {
                            AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(a.days_after_initiation)
                                .build()
                        }),
                    )
                    .build()?,
            );
        }
        client
            .put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build()?)
            .send()
            .await
            .with_context(|| format!("lifecycle of {name}"))?;
    }
    if let Some(block) = &spec.public_access_block_configuration {
        client
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(block.block_public_acls)
                    .block_public_policy(block.block_public_policy)
                    .ignore_public_acls(block.ignore_public_acls)
                    .restrict_public_buckets(block.restrict_public_buckets)
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("public access block of {name}"))?;
    }
    Ok(())
}

pub async fn create_configuration_set(client: &aws_sdk_sesv2::Client, name: &str) -> Result<()> {
    match client.create_configuration_set().configuration_set_name(name).send().await {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => Ok(()),
        Err(err) => Err(err).context("creating the SES configuration set"),
    }
}

/// Everything the local stack needs, from the template.
pub struct LocalStack {
    pub table: String,
    /// The erasure tombstones' table.
    pub tombstones: String,
    pub bucket: String,
    pub mail_from: String,
    pub configuration_set: String,
}

/// Creates the template's queues (with their redrive policies); returns (logical id, URL) pairs.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    template: &crate::template::Template,
    prefix: &str,
) -> Result<Vec<(String, String)>> {
    let mut created: Vec<(String, String)> = Vec::new();
    for queue in template.queues()? {
        let dead_letter = match &queue.redrive {
            Some((target, receives)) => {
                let url =
                    created.iter().find(|(id, _)| id == target).map(|(_, url)| url.clone()).with_context(
                        || {
                            format!(
                                "{}: dead-letter queue {target} is not a queue of the template",
                                queue.logical_id
                            )
                        },
                    )?;
                Some((queue_arn(sqs, &url).await?, *receives))
            }
            None => None,
        };
        let name = format!("{prefix}{}", queue.local_name());
        let url = create_queue(sqs, &name, dead_letter.as_ref().map(|(arn, n)| (arn.as_str(), *n))).await?;
        created.push((queue.logical_id.clone(), url));
    }
    Ok(created)
}

/// The settings that only exist once the queues do, as `NAME=value` lines (RESOURCES_ENV_OUT):
/// each worker queue's URL under its [`QueueWorker::url_variable`](crate::pump::QueueWorker),
/// and the dispatcher's failure queue. `queues` is what [`create_queues`] returned.
pub fn resources_env(queues: &[(String, String)]) -> Result<String> {
    let url_of = |id: &str| {
        queues
            .iter()
            .find(|(queue, _)| queue == id)
            .map(|(_, url)| url.as_str())
            .with_context(|| format!("the template has no queue {id}"))
    };
    let mut lines = String::new();
    for worker in crate::pump::QUEUE_WORKERS {
        lines.push_str(&format!("{}={}\n", worker.url_variable, url_of(worker.queue)?));
    }
    lines.push_str(&format!("DISPATCH_FAILURE_QUEUE_URL={}\n", url_of("DispatchFailureQueue")?));
    Ok(lines)
}

pub async fn provision_all(
    sdk: &aws_config::SdkConfig,
    template: &crate::template::Template,
    names: &LocalStack,
) -> Result<Vec<(String, String)>> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    create_table(&dynamo, &names.table, &template.the_table()?).await?;
    create_table(&dynamo, &names.tombstones, &template.tombstones_table()?).await?;
    let s3 = s3_client(sdk);
    create_bucket(&s3, &names.bucket).await?;
    configure_bucket(&s3, &names.bucket, &template.bucket("ExportBucket")?).await?;
    let ses = aws_sdk_sesv2::Client::new(sdk);
    create_configuration_set(&ses, &names.configuration_set).await?;
    create_mail_identity(&ses, &names.mail_from).await?;
    create_queues(&aws_sdk_sqs::Client::new(sdk), template, "").await
}

/// Path-style addressing: the emulator at 127.0.0.1 has no per-bucket host names.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    privacy_shared::deps::s3_client(sdk, true)
}

/// An SQS queue (FIFO when the name ends in `.fifo`), optionally with a redrive policy to a
/// dead-letter queue. Returns the queue URL.
pub async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter_arn: Option<(&str, u32)>,
) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut request = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    if let Some((arn, max_receives)) = dead_letter_arn {
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()})
                .to_string(),
        );
    }
    let out = request.send().await.with_context(|| format!("creating queue {name}"))?;
    out.queue_url().map(str::to_owned).context("no queue url")
}

pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the queue's ARN")?;
    out.attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .context("no queue ARN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resources_env_names_every_worker_queue_and_the_failure_queue() {
        let template = crate::template::Template::load(&crate::template::default_path()).unwrap();
        let queues: Vec<(String, String)> = template
            .queues()
            .unwrap()
            .into_iter()
            .map(|q| (q.logical_id.clone(), format!("http://127.0.0.1:5000/000000000000/{}", q.local_name())))
            .collect();
        let env = resources_env(&queues).unwrap();
        let lines: Vec<&str> = env.lines().collect();
        assert_eq!(
            lines,
            [
                "EXPORT_QUEUE_URL=http://127.0.0.1:5000/000000000000/ExportQueue.fifo",
                "ERASURE_QUEUE_URL=http://127.0.0.1:5000/000000000000/ErasureQueue.fifo",
                "DISPATCH_FAILURE_QUEUE_URL=http://127.0.0.1:5000/000000000000/DispatchFailureQueue",
            ]
        );
        let without_erasure: Vec<(String, String)> =
            queues.into_iter().filter(|(id, _)| id != "ErasureQueue").collect();
        let err = resources_env(&without_erasure).unwrap_err();
        assert!(err.to_string().contains("ErasureQueue"), "{err}");
    }
}
