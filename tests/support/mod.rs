//! The harness: one fresh table per test in the emulator with the real AWS wiring around it (or,
//! for tests of the handlers' own logic, the whole stack in memory: [`Local`]), a clock the test
//! moves, and helpers to speak HTTP to the handlers and read the mail they sent.

pub mod browser;
pub mod http;
mod local;

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use devstack::mailbox::{self, SentMail};
use devstack::template::{self, Template};
use privacy_shared::mail::Mailer;
use privacy_shared::{AwsDeps, Config, Deps, Env, ManualClock};

pub type Item = HashMap<String, AttributeValue>;

// The store's item families, for every test module that reads or writes the store directly.
pub use local::{Local, LocalVerifier};
pub use privacy_shared::store::{People, Requests, Secrets};

pub const MAIL_FROM: &str = "privacy@example.com";
pub const CONFIGURATION_SET: &str = "privacy-requests";
pub const PUBLIC_BASE_URL: &str = "https://privacy.example.test";
/// The key the test stacks' status links are derived with (a fixed test-only secret).
pub const STATUS_LINK_KEY: &str = "a-test-only-status-link-key-not-a-secret";

/// Saturday 28 November 2026, 10:00 in Amsterdam.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
}

pub struct Stack {
    pub sdk: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub clock: Arc<ManualClock>,
    pub endpoint: String,
    /// The name prefix of this stack's copy of the data map's sources (made on first use).
    pub data_prefix: String,
    sources: tokio::sync::OnceCell<privacy_shared::datamap::DataMap>,
    env: Vec<(String, String)>,
}

/// Always the emulator: explicit endpoint and dummy credentials, so no test can reach AWS.
pub async fn emulator_sdk() -> (aws_config::SdkConfig, String) {
    emulator_sdk_at(devstack::endpoint()).await
}

/// [`emulator_sdk`] for an emulator of the test's own (one started with special settings).
pub async fn emulator_sdk_at(endpoint: String) -> (aws_config::SdkConfig, String) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .load()
        .await;
    (sdk, endpoint)
}

impl Stack {
    pub async fn new() -> Stack {
        Stack::with_env(&[]).await
    }

    /// A stack whose functions see these extra environment settings.
    pub async fn with_env(extra: &[(&str, &str)]) -> Stack {
        Stack::at(devstack::endpoint(), extra).await
    }

    /// A stack in the emulator at `endpoint` (one the test started itself).
    pub async fn at(endpoint: String, extra: &[(&str, &str)]) -> Stack {
        let (sdk, endpoint) = emulator_sdk_at(endpoint).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = format!("requests-{}", uuid::Uuid::new_v4().simple());
        let spec = Template::load(&template::default_path())
            .and_then(|t| t.the_table())
            .expect("template has the table");
        devstack::provision::create_table(&dynamo, &table, &spec)
            .await
            .unwrap_or_else(|e| panic!("the emulator must run at {endpoint} (use `make test`): {e:#}"));
        devstack::provision::create_mail_identity(&aws_sdk_sesv2::Client::new(&sdk), MAIL_FROM)
            .await
            .unwrap();
        let mut env = vec![
            ("TABLE_NAME".to_owned(), table.clone()),
            ("MAIL_FROM".to_owned(), MAIL_FROM.to_owned()),
            ("SES_CONFIGURATION_SET".to_owned(), CONFIGURATION_SET.to_owned()),
            ("PUBLIC_BASE_URL".to_owned(), PUBLIC_BASE_URL.to_owned()),
            ("STATUS_LINK_KEY".to_owned(), STATUS_LINK_KEY.to_owned()),
            ("BUSINESS_TIME_ZONE".to_owned(), "Europe/Amsterdam".to_owned()),
            ("BUSINESS_HOLIDAYS".to_owned(), "2026-12-25,2026-12-26".to_owned()),
            // The AWS side alone, unless a test of the sources outside AWS asks for them all
            // (`DATA_MAP_SCOPE=all`, with a reference webhook running).
            ("DATA_MAP_SCOPE".to_owned(), "aws".to_owned()),
            // Where the staff API stages files for manual sources (a test that uploads makes its own).
            ("EXPORT_BUCKET".to_owned(), "privacy-exports-test".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let data_prefix = format!("d{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Stack {
            sdk,
            dynamo,
            table,
            clock: Arc::new(ManualClock::new(start_time())),
            endpoint,
            data_prefix,
            sources: tokio::sync::OnceCell::new(),
            env,
        }
    }

    /// This stack's data map, its sources created and seeded with the sample people.
    pub async fn data_map(&self) -> privacy_shared::datamap::DataMap {
        self.sources
            .get_or_init(|| async {
                let map = privacy_shared::config::data_map(
                    &self.env(&[("DATA_NAME_PREFIX", self.data_prefix.clone())]),
                )
                .expect("the data map loads");
                devstack::seed::create_sources(&self.sdk, &map).await.expect("data map sources");
                let sample = devstack::seed::SampleData::load(&devstack::seed::default_path()).unwrap();
                devstack::seed::seed(&self.sdk, &map, &sample).await.expect("sample people");
                map
            })
            .await
            .clone()
    }

    /// The environment this stack's functions see, with `extra` settings on top.
    pub fn env(&self, extra: &[(&str, String)]) -> Env {
        let mut pairs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        Env::from_pairs(&pairs)
    }

    pub fn config(&self) -> Config {
        Config::load(&self.env(&[])).expect("test configuration is valid")
    }

    /// The production wiring (DynamoDB, SES) with this test's table and clock.
    pub fn deps(&self) -> AwsDeps {
        AwsDeps::with_sdk(&self.sdk, self.config(), self.clock.clone())
    }

    pub fn verifier(&self) -> AwsVerifier {
        verify::Verifier::new(self.deps())
    }

    /// Every item of this test's table.
    pub async fn items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return items;
            }
        }
    }

    pub async fn item(&self, pk: &str, sk: &str) -> Option<Item> {
        self.dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    /// Deletes an item as DynamoDB's TTL would, behind the functions' backs.
    pub async fn delete_item(&self, pk: &str, sk: &str) {
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .send()
            .await
            .expect("delete item");
    }

    /// Mail the emulator accepted for this address (addresses are unique per test).
    pub async fn mail_to(&self, address: &str) -> Vec<SentMail> {
        mailbox::fetch_to(&self.endpoint, address).await.expect("emulator mailbox")
    }
}

/// Every function's IAM role from the template, made in the emulator for one [`Stack`]; a
/// function signing with its role is refused (by the emulator's IAM guard) whatever the role does
/// not allow, as in AWS.
pub struct Roles {
    credentials: HashMap<String, devstack::roles::RoleCredentials>,
}

impl Roles {
    /// An SDK configuration signing as `binary`'s role.
    pub fn sdk(&self, base: &aws_config::SdkConfig, binary: &str) -> aws_config::SdkConfig {
        self.credentials
            .get(binary)
            .unwrap_or_else(|| panic!("the template has no function {binary}"))
            .sdk(base)
    }
}

impl Stack {
    /// The template's roles with this stack's names: its table, the data map's sources under its
    /// prefix, and `resources` (logical id, this stack's physical name), as CloudFormation would
    /// resolve them for a deployed stack.
    pub async fn roles(&self, resources: &[(&str, &str)]) -> Roles {
        let template = Template::load(&template::default_path()).expect("the template");
        self.data_map().await;
        let stack_name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut names = devstack::roles::Names::new("eu-west-1", &stack_name)
            .parameter("MailFromAddress", MAIL_FROM)
            .parameter("StaffNotificationAddress", "privacy-team@example.com")
            .parameter("AlarmEmailAddress", "alarms@example.com")
            .parameter("PublicBaseUrl", PUBLIC_BASE_URL)
            .resource("RequestsTable", &self.table)
            .resource("MailConfigurationSet", CONFIGURATION_SET)
            .sources(&privacy_shared::datamap::DataMap::builtin().unwrap(), &self.data_prefix);
        for (logical_id, physical) in resources {
            names = names.resource(logical_id, physical);
        }
        let made = devstack::roles::provision_roles(&self.sdk, &template, &names)
            .await
            .unwrap_or_else(|e| panic!("the template's roles in the emulator: {e:#}"));
        Roles { credentials: made.into_iter().map(|c| (c.binary.clone(), c)).collect() }
    }

    /// This stack as one function sees it: the same table, clock, settings and data map, every
    /// call signed with that function's role. The test's own reads (`dynamo`, `items`) stay the
    /// developer's.
    pub fn signing_as(&self, roles: &Roles, binary: &str) -> Stack {
        Stack {
            sdk: roles.sdk(&self.sdk, binary),
            dynamo: self.dynamo.clone(),
            table: self.table.clone(),
            clock: self.clock.clone(),
            endpoint: self.endpoint.clone(),
            data_prefix: self.data_prefix.clone(),
            sources: tokio::sync::OnceCell::new_with(self.sources.get().cloned()),
            env: self.env.clone(),
        }
    }
}

/// What the functions' logging wrote, for tests that read it (`telemetry::subscriber` writes here).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An address no other test uses, and its own mailbox too (a `+tag` would share the base
/// mailbox's mail budget).
pub fn unique_address(tag: &str) -> String {
    format!("{tag}.{}@example.com", uuid::Uuid::new_v4().simple())
}

pub fn submission(email: &str, kind: &str, region: &str) -> String {
    serde_json::json!({"email": email, "kind": kind, "region": region}).to_string()
}

pub fn http(method: &str, path: &str, content_type: Option<&str>, body: Body) -> Request {
    let mut builder =
        lambda_http::http::Request::builder().method(method).uri(format!("https://api.example.test{path}"));
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).expect("request")
}

/// A GET of an emailed link (the download link), as API Gateway delivers it.
pub fn get(url: &str) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let path_and_query = url.trim_start_matches(PUBLIC_BASE_URL);
    http("GET", path_and_query, None, lambda_http::Body::Empty).with_query_string_parameters(
        url.split_once('?')
            .map(|(_, q)| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<std::collections::HashMap<_, _>>()
            })
            .unwrap_or_default(),
    )
}

pub fn post_json(path: &str, body: &str) -> Request {
    http("POST", path, Some("application/json"), Body::Text(body.to_owned()))
}

/// As API Gateway delivers `POST /requests/{id}/verify`: path parameter set.
pub fn verify_request(id: &str, body: &str) -> Request {
    post_json(&format!("/requests/{id}/verify"), body)
        .with_path_parameters(HashMap::from([("id".to_owned(), id.to_owned())]))
}

pub fn token_body(token: &str) -> String {
    serde_json::json!({ "token": token }).to_string()
}

pub fn json_of(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null)
}

/// Submits through the real intake handler; returns the status and the JSON body.
pub async fn submit<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    body: &str,
) -> (u16, Value) {
    let response = intake::handle(deps, post_json("/requests", body)).await.unwrap();
    (response.status().as_u16(), json_of(&response))
}

pub type AwsVerifier = verify::Verifier<privacy_shared::store::DynamoStore, privacy_shared::mail::SesMailer>;

pub async fn verify_with<S: Requests + Secrets, M: Mailer>(
    verifier: &verify::Verifier<S, M>,
    id: &str,
    token: &str,
) -> (u16, Value) {
    let response = verify::handle(verifier, verify_request(id, &token_body(token))).await.unwrap();
    (response.status().as_u16(), json_of(&response))
}

/// The request id and token from the verification link in a mail.
pub fn link_parts(mail: &SentMail) -> (String, String) {
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.starts_with(&format!("{PUBLIC_BASE_URL}/verify")) && l.contains('#'))
        .expect("the mail has a verification link");
    fragment_parts(&link)
}

/// `request_id` and `token` from a link's fragment.
pub fn fragment_parts(link: &str) -> (String, String) {
    let fragment = link.split_once('#').map(|(_, f)| f).unwrap_or_default();
    let mut id = None;
    let mut token = None;
    for pair in fragment.split('&') {
        match pair.split_once('=') {
            Some(("request_id", v)) => id = Some(v.to_owned()),
            Some(("token", v)) => token = Some(v.to_owned()),
            _ => {}
        }
    }
    (id.expect("request_id in link"), token.expect("token in link"))
}

pub type AwsDispatcher = dispatch::Dispatcher<
    privacy_shared::store::DynamoStore,
    privacy_shared::mail::SesMailer,
    privacy_shared::jobs::SqsJobQueue,
    privacy_shared::sources::AwsPersonalData,
>;

/// The real dispatcher of this stack, with its staff address, export queue and a fresh erasure
/// queue; it triages against this stack's seeded data map.
pub async fn dispatcher(stack: &Stack, export_queue_url: &str, staff: &str) -> AwsDispatcher {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let name = format!("erasure-{}.fifo", uuid::Uuid::new_v4().simple());
    let erasure = devstack::provision::create_queue(&sqs, &name, None).await.expect("erasure queue");
    dispatcher_with(stack, export_queue_url, &erasure, staff).await
}

pub async fn dispatcher_with(
    stack: &Stack,
    export_queue_url: &str,
    erasure_queue_url: &str,
    staff: &str,
) -> AwsDispatcher {
    stack.data_map().await;
    let env = stack.env(&[
        ("STAFF_ADDRESS", staff.to_owned()),
        ("EXPORT_QUEUE_URL", export_queue_url.to_owned()),
        ("ERASURE_QUEUE_URL", erasure_queue_url.to_owned()),
        ("DATA_NAME_PREFIX", stack.data_prefix.clone()),
    ]);
    let settings =
        privacy_shared::config::DispatchSettings::load(&env).expect("dispatcher settings are valid");
    dispatch::Dispatcher::with_sdk(&stack.sdk, settings, stack.clock.clone())
}

pub type AwsSweeper = reminders::Sweeper<privacy_shared::store::DynamoStore, privacy_shared::mail::SesMailer>;

/// The real daily sweep of this stack, reporting to `staff`.
pub fn sweeper(stack: &Stack, staff: &str) -> AwsSweeper {
    let env = stack.env(&[("STAFF_ADDRESS", staff.to_owned())]);
    let settings = privacy_shared::config::ReminderSettings::load(&env).expect("sweep settings are valid");
    reminders::Sweeper::with_sdk(&stack.sdk, settings, stack.clock.clone())
}

/// Runs the sweep as the scheduler would invoke it.
pub async fn run_sweep(sweeper: &AwsSweeper) -> Result<reminders::SweepReport, reminders::SweepError> {
    let event = lambda_runtime::LambdaEvent::new(serde_json::json!({"sweep": "daily"}), Default::default());
    reminders::handle(sweeper, event).await
}

pub type AwsAdmin = admin::Admin<privacy_shared::store::DynamoStore>;

pub const STAFF_ARN: &str = "arn:aws:iam::123456789012:user/privacy-officer";

/// The staff API of this stack as deployed: IAM only.
pub fn staff_api(stack: &Stack) -> AwsAdmin {
    let settings = privacy_shared::config::AdminSettings::load(&stack.env(&[])).expect("admin settings");
    admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone())
}

/// A staff API call as API Gateway delivers it (payload 2.0). With `caller`, the request context
/// carries the IAM identity API Gateway verified; without, it is unsigned.
pub fn staff_call(method: &str, path_and_query: &str, body: Option<&Value>, caller: Option<&str>) -> Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let query_params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    let mut context = serde_json::json!({
        "accountId": "123456789012",
        "apiId": "staffapi",
        "domainName": "staff.example.test",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "staff"},
        "requestId": "test",
        "routeKey": format!("{method} {path}"),
        "stage": "$default",
        "time": "28/Nov/2026:09:00:00 +0000",
        "timeEpoch": 1795856400000_i64,
    });
    if let Some(arn) = caller {
        context["authorizer"] = serde_json::json!({"iam": {
            "accessKey": "AKIDSTAFF", "accountId": "123456789012", "callerId": "AIDASTAFF",
            "userArn": arn, "userId": "AIDASTAFF"
        }});
    }
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "staff.example.test"},
        "queryStringParameters": if query_params.is_empty() { Value::Null } else { Value::Object(query_params) },
        "requestContext": context,
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// Calls the staff API as the privacy officer; returns the status and the JSON body.
pub async fn staff<S: admin::StaffStore>(
    admin: &admin::Admin<S>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response =
        admin::handle(admin, staff_call(method, path, body.as_ref(), Some(STAFF_ARN))).await.unwrap();
    (response.status().as_u16(), json_of(&response))
}

/// Submits and verifies a request through the real handlers; returns its id.
pub async fn verified_request(
    stack: &Stack,
    address: &str,
    kind: &str,
    region: &str,
) -> privacy_shared::domain::RequestId {
    let (status, body) = submit(&stack.deps(), &submission(address, kind, region)).await;
    assert_eq!(status, 202);
    // Seeded people (alice@example.com) get mail from tests running beside this one: the
    // emulator's mailbox is shared, so the link is picked by its request id.
    let submitted = body["request_id"].as_str().expect("a request id").to_owned();
    let mails = stack.mail_to(address).await;
    let (id, token) = mails
        .iter()
        .map(link_parts)
        .rfind(|(id, _)| *id == submitted)
        .expect("a verification email for this request");
    assert_eq!(verify_with(&stack.verifier(), &id, &token).await.0, 200);
    privacy_shared::domain::RequestId::parse(&id).unwrap()
}

/// What a test needs of a stack, whichever it is: the emulator-backed [`Stack`] or the in-memory
/// [`Local`]. Tests of the handlers' own logic are written once against this.
pub trait Harness {
    type Store: Requests + Secrets + People + privacy_shared::store::RequestStore;
    type Mailer: Mailer;
    fn deps(&self) -> Deps<Self::Store, Self::Mailer>;
    fn mail_to(&self, address: &str) -> impl std::future::Future<Output = Vec<SentMail>>;
}

impl Harness for Stack {
    type Store = privacy_shared::store::DynamoStore;
    type Mailer = privacy_shared::mail::SesMailer;
    fn deps(&self) -> AwsDeps {
        Stack::deps(self)
    }
    async fn mail_to(&self, address: &str) -> Vec<SentMail> {
        Stack::mail_to(self, address).await
    }
}

impl Harness for Local {
    type Store = privacy_shared::store::MemoryStore;
    type Mailer = privacy_shared::mail::MemoryMailer;
    fn deps(&self) -> privacy_shared::MemoryDeps {
        Local::deps(self)
    }
    async fn mail_to(&self, address: &str) -> Vec<SentMail> {
        Local::mail_to(self, address).await
    }
}

/// A worker's view of the sources outside AWS, as the functions build it (no endpoint
/// overrides, no callbacks): for workers over a map without such sources.
pub fn no_outside(
    sdk: &aws_config::SdkConfig,
) -> privacy_shared::outside::Outside<privacy_shared::deps::WebhookEndpoints> {
    privacy_shared::deps::webhook_endpoints(sdk, &privacy_shared::config::OutsideSettings::default())
}
