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
