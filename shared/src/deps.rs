//! What a function holds across invocations: built once at cold start, borrowed by each call.

use std::sync::Arc;

use crate::mail::templates::Templates;
use crate::mail::{Mailer, SesMailer};
use crate::store::{DynamoStore, RequestStore};
use crate::{Clock, Config, SystemClock};

pub struct Deps<S: RequestStore, M: Mailer> {
    pub store: S,
    pub mailer: M,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    pub templates: Templates,
}

/// The deployed wiring: DynamoDB, SES v2 and the system clock. Endpoints, region and credentials
/// come from the standard AWS environment (`AWS_ENDPOINT_URL` points them at the emulator).
pub type AwsDeps = Deps<DynamoStore, SesMailer>;

impl AwsDeps {
    pub async fn from_env() -> Result<AwsDeps, crate::ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(AwsDeps::with_sdk(&sdk, config, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, config: Config, clock: Arc<dyn Clock>) -> AwsDeps {
        Deps {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name.clone()),
            mailer: SesMailer::new(
                aws_sdk_sesv2::Client::new(sdk),
                config.mail_from.clone(),
                config.ses_configuration_set.clone(),
            ),
            clock,
            config,
            templates: Templates::new(),
        }
    }
}

/// An S3 client, with path-style addressing where asked for: the emulator at 127.0.0.1 has no
/// per-bucket host names. Off by default, as AWS wants.
pub fn s3_client(sdk: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(force_path_style).build(),
    )
}

/// `S3_FORCE_PATH_STYLE=true` in the environment.
pub fn s3_path_style_from_env() -> bool {
    std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true")
}

/// What the workers over the data map's sources (`export`, `erasure`) build at cold start: the
/// request store, the sources (named with `DATA_NAME_PREFIX`), an S3 client and the export bucket.
pub struct SourceWorker {
    pub store: DynamoStore,
    pub data: crate::sources::AwsPersonalData,
    pub map: crate::datamap::DataMap,
    pub s3: aws_sdk_s3::Client,
    pub export_bucket: String,
}

impl SourceWorker {
    pub async fn from_env() -> Result<SourceWorker, Box<dyn std::error::Error + Send + Sync>> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let table = get("TABLE_NAME").ok_or("TABLE_NAME is not set")?;
        let export_bucket = get("EXPORT_BUCKET").ok_or("EXPORT_BUCKET is not set")?;
        let s3 = s3_client(&sdk, s3_path_style_from_env());
        let map = crate::datamap::DataMap::builtin()?
            .with_name_prefix(&get("DATA_NAME_PREFIX").unwrap_or_default());
        Ok(SourceWorker {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
            data: crate::sources::AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&sdk), s3.clone()),
            map,
            s3,
            export_bucket,
        })
    }
}
