//! What a function holds across invocations: built once at cold start, borrowed by each call.

use std::sync::Arc;

use crate::config::Env;
use crate::mail::templates::Templates;
use crate::mail::{MemoryMailer, SesMailer};
use crate::store::{DynamoStore, MemoryStore};
use crate::{Clock, Config, SystemClock};

pub struct Deps<S, M> {
    pub store: S,
    pub mailer: M,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    pub templates: Templates,
}

/// The deployed wiring: DynamoDB, SES v2 and the system clock. Endpoints, region and credentials
/// come from the standard AWS environment (`AWS_ENDPOINT_URL` points them at the emulator).
pub type AwsDeps = Deps<DynamoStore, SesMailer>;

/// Everything in memory, for flow tests that do not test AWS itself.
pub type MemoryDeps = Deps<MemoryStore, MemoryMailer>;

/// The AWS SDK's configuration from the standard environment, loaded once per cold start.
pub async fn sdk_from_env() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

impl AwsDeps {
    pub async fn from_env() -> Result<AwsDeps, crate::ConfigError> {
        let config = Config::load(&Env::process())?;
        Ok(AwsDeps::with_sdk(&sdk_from_env().await, config, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, config: Config, clock: Arc<dyn Clock>) -> AwsDeps {
        AwsDeps::with_dynamo(sdk, aws_sdk_dynamodb::Client::new(sdk), config, clock)
    }

    /// The same, on a DynamoDB client the function also reads other tables with: a client costs
    /// a few hundred microseconds of cold start to build, and one per service is enough.
    pub fn with_dynamo(
        sdk: &aws_config::SdkConfig,
        dynamo: aws_sdk_dynamodb::Client,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> AwsDeps {
        Deps {
            store: DynamoStore::new(dynamo, config.table_name.clone()),
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

impl MemoryDeps {
    pub fn in_memory(config: Config, clock: Arc<dyn Clock>) -> MemoryDeps {
        Deps {
            store: MemoryStore::new(),
            mailer: MemoryMailer::new(),
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

/// What the workers over the data map's sources (`export`, `erasure`) build at cold start: the
/// request store, the sources, an S3 client and the export bucket.
pub struct SourceWorker {
    pub store: DynamoStore,
    pub data: crate::sources::AwsPersonalData,
    pub map: crate::datamap::DataMap,
    pub s3: aws_sdk_s3::Client,
    pub export_bucket: String,
}

impl SourceWorker {
    pub fn new(sdk: &aws_config::SdkConfig, settings: crate::config::WorkerSettings) -> SourceWorker {
        let s3 = s3_client(sdk, settings.s3_path_style);
        // One client for the request table and the sources' tables (see `AwsDeps::with_dynamo`).
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        SourceWorker {
            store: DynamoStore::new(dynamo.clone(), settings.table_name),
            data: crate::sources::AwsPersonalData::new(dynamo, s3.clone()),
            map: settings.data_map,
            s3,
            export_bucket: settings.export_bucket,
        }
    }
}
