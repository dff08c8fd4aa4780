//! The privacy staff's command-line client for the staff API (the `admin` function).
//!
//! [`run`] is the whole program minus the process: it parses arguments, calls the API and
//! writes to the given streams, so tests can drive it end to end. [`api::api_call`] maps a
//! command to its HTTP call, [`client::Client`] authenticates and sends it, and [`render`]
//! turns the JSON answer into tables.

pub mod api;
pub mod attach;
pub mod cli;
pub mod client;
pub mod render;
pub mod replay;

use std::ffi::OsString;
use std::io::Write;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use clap::Parser;
use serde_json::{Value, json};

pub use api::{ApiCall, api_call, list_call, report_call, uploads_call};
pub use attach::LocalFile;
pub use cli::{AttachArgs, Cli, Command, DenialBasis, ListArgs, OpenStatus, ReportArgs};
pub use client::{Auth, Client};

/// Exit code of a failed call; usage errors exit with clap's 2.
pub const EXIT_FAILURE: i32 = 1;

/// Everything that can go wrong after the command line parsed. Each has a `code`, printed as
/// `error: <code>: <message>` like the API's own errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The staff API refused the call.
    #[error("{message}")]
    Api { status: u16, code: String, message: String },
    #[error("HTTP {status}: {detail}")]
    UnexpectedResponse { status: u16, detail: String },
    #[error("invalid endpoint {0}")]
    InvalidEndpoint(String),
    #[error("the local key {0}")]
    InvalidLocalKey(String),
    #[error("no AWS region: pass --region, set AWS_REGION or give your AWS profile a region")]
    NoRegion,
    #[error("no AWS credentials; sign in (e.g. `aws sso login`) or pass --local-key for the dev stack: {0}")]
    Credentials(String),
    #[error("could not build the request: {0}")]
    Request(String),
    #[error("could not sign the request: {0}")]
    Signing(String),
    #[error("could not set up TLS: {0}")]
    Tls(String),
    #[error("could not reach the staff API: {0}")]
    Transport(String),
    #[error("the staff API did not answer within 30 seconds")]
    Timeout,
    #[error("the server returned cursor {0} twice; stopping instead of looping")]
    CursorLoop(String),
    #[error("{0} does not exist")]
    FileNotFound(String),
    #[error("{path} {why}")]
    File { path: String, why: String },
    #[error("the upload was refused (HTTP {status}): {detail}")]
    Upload { status: u16, detail: String },
}

impl Error {
    pub fn code(&self) -> &str {
        match self {
            Error::Api { code, .. } => code,
            Error::UnexpectedResponse { .. } => "unexpected_response",
            Error::InvalidEndpoint(_) => "invalid_endpoint",
            Error::InvalidLocalKey(_) => "invalid_local_key",
            Error::NoRegion => "no_region",
            Error::Credentials(_) => "no_credentials",
            Error::Request(_) => "invalid_request",
            Error::Signing(_) => "signing_failed",
            Error::Tls(_) => "tls_setup_failed",
            Error::Transport(_) => "unreachable",
            Error::Timeout => "timeout",
            Error::CursorLoop(_) => "cursor_loop",
            Error::FileNotFound(_) => "file_not_found",
            Error::File { .. } => "invalid_file",
            Error::Upload { .. } => "upload_failed",
        }
    }
}

/// Where signing credentials come from when there is no `--local-key`.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// The standard AWS chain: environment, profiles, SSO, container and instance roles.
    AwsChain,
    /// Exactly these (tests; never touches the machine's AWS configuration). The region must
    /// then be given with `--region` or `AWS_REGION`.
    Fixed(Credentials),
}

/// The program: parse `args` (including the program name), call the API, write the result to
/// `stdout` or the error to `stderr`, and return the exit code.
pub async fn run<I, T>(
    args: I,
    credentials: CredentialSource,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" too, but belong on stdout with exit code 0.
            let mut text = error.render().to_string();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let _ = if error.use_stderr() {
                stderr.write_all(text.as_bytes())
            } else {
                stdout.write_all(text.as_bytes())
            };
            return error.exit_code();
        }
    };
    match execute(&cli, credentials).await {
        Ok(text) => match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            Ok(()) => 0,
            Err(_) => EXIT_FAILURE,
        },
        Err(error) => {
            let _ = writeln!(stderr, "error: {}: {error}", error.code());
            EXIT_FAILURE
        }
    }
}

/// Runs the parsed command and returns what to print.
pub async fn execute(cli: &Cli, credentials: CredentialSource) -> Result<String, Error> {
    // Files to attach are checked before anything is sent (or credentials are looked for).
    let files = match &cli.command {
        Command::Attach(args) => attach::check_files(&args.files)?,
        _ => Vec::new(),
    };
    let auth = resolve_auth(cli, credentials).await?;
    let client = Client::new(&cli.endpoint, auth)?;
    // The records come as CSV, printed as they came.
    if let Command::Report(args) = &cli.command
        && args.csv
    {
        return client.send_text(&api_call(&cli.command)).await;
    }
    let response = match &cli.command {
        Command::List(args) if args.all => list_all(&client, args).await?,
        Command::Attach(args) if !files.is_empty() => attach::attach(&client, args, &files).await?,
        Command::ReplayErasures(args) => replay::replay(&client, args).await?,
        command => client.send(&api_call(command)).await?,
    };
    Ok(if cli.json { render::render_json(&response) } else { render::render(&cli.command, &response) })
}

/// Every page from the first (or `--cursor`) to the end, as one list response.
pub async fn list_all(client: &Client, args: &ListArgs) -> Result<Value, Error> {
    let mut requests = Vec::new();
    let mut cursor = args.cursor.clone();
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = client.send(&list_call(args, cursor.as_deref())).await?;
        if let Some(items) = page.get("requests").and_then(Value::as_array) {
            requests.extend(items.iter().cloned());
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) if !seen.insert(next.to_string()) => return Err(Error::CursorLoop(next.to_string())),
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    Ok(json!({ "requests": requests, "next_cursor": null }))
}

async fn resolve_auth(cli: &Cli, credentials: CredentialSource) -> Result<Auth, Error> {
    if let Some(key) = &cli.local_key {
        return Ok(Auth::LocalKey(key.clone()));
    }
    match credentials {
        CredentialSource::Fixed(credentials) => {
            let region = cli.region.clone().ok_or(Error::NoRegion)?;
            Ok(Auth::SigV4 { credentials, region })
        }
        CredentialSource::AwsChain => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(region) = &cli.region {
                loader = loader.region(Region::new(region.clone()));
            }
            let config = loader.load().await;
            let region = config.region().map(|r| r.as_ref().to_string()).ok_or(Error::NoRegion)?;
            let provider = config
                .credentials_provider()
                .ok_or_else(|| Error::Credentials("no credentials provider is configured".into()))?;
            let credentials =
                provider.provide_credentials().await.map_err(|e| Error::Credentials(error_chain(&e)))?;
            Ok(Auth::SigV4 { credentials, region })
        }
    }
}

/// The error and its causes on one line: hyper says only "client error (Connect)" and the AWS
/// SDK "the credential provider was not enabled"; the useful part is in the sources.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
