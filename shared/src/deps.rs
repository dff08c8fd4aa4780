//! What a function holds across invocations: built once at cold start, borrowed by each call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;

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

/// The AWS SDK's configuration from the standard environment, loaded once per cold start, with
/// one HTTPS client for every SDK client built from it ([`shared_https_client`]).
pub async fn sdk_from_env() -> aws_config::SdkConfig {
    let version = aws_config::BehaviorVersion::latest();
    let loader = aws_config::defaults(version);
    match shared_https_client(version) {
        Some(http) => loader.http_client(http).load().await,
        None => loader.load().await,
    }
}

/// The SDK's default HTTPS client, once for the whole function. Left to itself, the SDK gives each
/// SDK client (the credential chain's STS client too) an HTTPS client of its own, and each of
/// those builds a TLS configuration from every system root certificate when the SDK client is
/// built (to load the certificates at init, not at the first request), and again for its first
/// request: a few hundred microseconds of cold start per SDK client, and a connection pool each.
/// Shared, the certificates are read into a TLS configuration once at init ([`CheckedOnce`]) and
/// once per connector settings at the first request.
pub fn shared_https_client(version: aws_config::BehaviorVersion) -> Option<SharedHttpClient> {
    use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
    let plugin = aws_smithy_runtime::client::defaults::default_http_client_plugin_v2(version)?;
    let components = plugin.runtime_components(&RuntimeComponentsBuilder::new("shared_https_client"));
    components.http_client().map(|inner| SharedHttpClient::new(CheckedOnce::new(inner)))
}

/// An HTTP client whose build-time check runs for the first SDK client only. The SDK checks the
/// HTTP client each time it builds an SDK client; the default client's check does nothing but
/// build and drop a TLS connector, which only needs doing once.
#[derive(Debug)]
pub struct CheckedOnce {
    inner: SharedHttpClient,
    checked: AtomicBool,
}

impl CheckedOnce {
    pub fn new(inner: SharedHttpClient) -> CheckedOnce {
        CheckedOnce { inner, checked: AtomicBool::new(false) }
    }
}

impl HttpClient for CheckedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        // A check that fails is repeated for the next SDK client, and fails it too.
        self.inner.validate_base_client_config(components, cfg)?;
        self.checked.store(true, Ordering::Release);
        Ok(())
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
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
    pub outside: crate::outside::Outside<WebhookEndpoints>,
}

/// How the workers call webhook sources: over HTTPS, signed with keys from Secrets Manager (or
/// SigV4 with the function's role).
pub type WebhookEndpoints = crate::webhook::HttpEndpoints<crate::webhook::SecretsManagerKeys>;

/// The workers' webhook caller for `settings`, with the SDK's credentials for SigV4 sources.
pub fn webhook_endpoints(
    sdk: &aws_config::SdkConfig,
    settings: &crate::config::OutsideSettings,
) -> crate::outside::Outside<WebhookEndpoints> {
    let keys = crate::webhook::SecretsManagerKeys::new(aws_sdk_secretsmanager::Client::new(sdk));
    crate::outside::Outside {
        endpoints: crate::webhook::HttpEndpoints::new(
            keys,
            settings.endpoints.clone(),
            sdk.credentials_provider(),
        ),
        callback_base: settings.callback_base.clone(),
    }
}

impl SourceWorker {
    pub fn new(sdk: &aws_config::SdkConfig, settings: crate::config::WorkerSettings) -> SourceWorker {
        let s3 = s3_client(sdk, settings.s3_path_style);
        // One client for the request table and the sources' tables (see `AwsDeps::with_dynamo`).
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        SourceWorker {
            store: DynamoStore::new(dynamo.clone(), settings.table_name),
            data: crate::sources::AwsPersonalData::new(dynamo, s3.clone()),
            outside: webhook_endpoints(sdk, &settings.outside),
            map: settings.data_map,
            s3,
            export_bucket: settings.export_bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its build-time checks, failing the first `failures` of them; never sends anything.
    #[derive(Debug)]
    struct CountingClient {
        checks: Arc<AtomicUsize>,
        failures: usize,
    }

    impl HttpClient for CountingClient {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            panic!("these tests send no request")
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            let check = self.checks.fetch_add(1, Ordering::SeqCst);
            if check < self.failures { Err("not ready".into()) } else { Ok(()) }
        }
    }

    fn counting(failures: usize) -> (CheckedOnce, Arc<AtomicUsize>) {
        let checks = Arc::new(AtomicUsize::new(0));
        let inner = SharedHttpClient::new(CountingClient { checks: checks.clone(), failures });
        (CheckedOnce::new(inner), checks)
    }

    #[tokio::test]
    async fn every_sdk_client_of_a_function_shares_one_https_client_checked_once() {
        let (http, checks) = counting(0);
        let credentials = aws_sdk_dynamodb::config::Credentials::new("AKID", "secret", None, None, "test");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .credentials_provider(credentials)
            .load()
            .await;
        let _clients = (
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_sesv2::Client::new(&sdk),
            aws_sdk_sqs::Client::new(&sdk),
            s3_client(&sdk, true),
        );
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_check_is_made_again_for_the_next_sdk_client() {
        let (http, checks) = counting(1);
        let (components, cfg) = (RuntimeComponentsBuilder::new("test"), ConfigBag::base());
        assert!(http.validate_base_client_config(&components, &cfg).is_err());
        assert!(http.validate_base_client_config(&components, &cfg).is_ok());
        assert!(http.validate_base_client_config(&components, &cfg).is_ok());
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_functions_sdk_configuration_carries_the_shared_client() {
        assert!(shared_https_client(aws_config::BehaviorVersion::latest()).is_some());
        assert!(sdk_from_env().await.http_client().is_some());
    }
}
