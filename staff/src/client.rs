//! Sends calls to the staff API: signed with SigV4 for API Gateway's IAM authorisation, or with
//! the local dev stack's key.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::Error;
use crate::api::ApiCall;

/// API Gateway's service name in SigV4 credential scopes.
pub const SIGNING_SERVICE: &str = "execute-api";
/// The header the local dev stack checks instead of a signature.
pub const LOCAL_KEY_HEADER: &str = "x-staff-key";
const TIMEOUT: Duration = Duration::from_secs(30);
/// An upload of up to 50 MiB on a slow line; the presigned URL lives 15 minutes.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How the client proves who it is.
#[derive(Clone)]
pub enum Auth {
    /// The deployed API: SigV4 with the staff member's AWS credentials.
    SigV4 { credentials: Credentials, region: String },
    /// The local dev stack: no signature, a shared key.
    LocalKey(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Credentials' own Debug redacts the secret and token.
            Auth::SigV4 { credentials, region } => {
                f.debug_struct("SigV4").field("credentials", credentials).field("region", region).finish()
            }
            Auth::LocalKey(_) => f.write_str("LocalKey(** redacted **)"),
        }
    }
}

pub struct Client {
    scheme: Scheme,
    authority: Authority,
    /// The endpoint's path without a trailing slash, e.g. `/prod` or empty.
    base_path: String,
    auth: Auth,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &format!("{}://{}{}", self.scheme, self.authority, self.base_path))
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(endpoint: &str, auth: Auth) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidEndpoint(format!("{endpoint}: {why}"));
        let uri: Uri = endpoint.trim().parse().map_err(|_| invalid("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("expected http:// or https://"))?;
        let https = scheme == Scheme::HTTPS;
        if !https && scheme != Scheme::HTTP {
            return Err(invalid("expected http:// or https://"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if uri.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let builder = if https {
            builder.with_provider_and_native_roots(provider).map_err(|e| Error::Tls(e.to_string()))?
        } else {
            // A plain-http endpoint never handshakes, and the machine need not have CA certificates.
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client { scheme, authority, base_path, auth, http })
    }

    /// The HTTP request for `call`, authenticated as of `now`.
    pub fn prepare(&self, call: &ApiCall, now: SystemTime) -> Result<Request<Full<Bytes>>, Error> {
        self.prepare_accepting(call, now, "application/json")
    }

    /// [`Client::prepare`] asking for `accept` (signed with the request, so set before signing).
    fn prepare_accepting(
        &self,
        call: &ApiCall,
        now: SystemTime,
        accept: &'static str,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.base_path, call.path_and_query))
            .build()
            .map_err(|e| Error::Request(e.to_string()))?;
        let body = match &call.body {
            Some(body) => serde_json::to_vec(body).map_err(|e| Error::Request(e.to_string()))?,
            None => Vec::new(),
        };
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(uri)
            .header(ACCEPT, accept)
            .header(USER_AGENT, concat!("staff-cli/", env!("CARGO_PKG_VERSION")));
        if call.body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Bytes::from(body);
        let mut request = request.body(Full::new(body.clone())).map_err(|e| Error::Request(e.to_string()))?;

        match &self.auth {
            Auth::LocalKey(key) => {
                let mut value = HeaderValue::from_str(key).map_err(|_| {
                    Error::InvalidLocalKey("contains characters not allowed in a header".into())
                })?;
                value.set_sensitive(true);
                request.headers_mut().insert(LOCAL_KEY_HEADER, value);
            }
            Auth::SigV4 { credentials, region } => {
                sign_request(&mut request, &body, credentials, region, now)?;
            }
        }
        Ok(request)
    }

    /// Sends `call` and returns the response's JSON, or the API's error.
    pub async fn send(&self, call: &ApiCall) -> Result<Value, Error> {
        let request = self.prepare(call, SystemTime::now())?;
        let exchange = async {
            let response =
                self.http.request(request).await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            let status = response.status();
            let body =
                response.into_body().collect().await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            Ok::<_, Error>((status, body.to_bytes()))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| Error::Timeout)??;
        interpret(status.as_u16(), &body)
    }

    /// Sends `call` for a text answer (the records' CSV) and returns it as it came; an error is
    /// still the API's JSON.
    pub async fn send_text(&self, call: &ApiCall) -> Result<String, Error> {
        let request = self.prepare_accepting(call, SystemTime::now(), "text/csv")?;
        let exchange = async {
            let response =
                self.http.request(request).await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            let status = response.status();
            let body =
                response.into_body().collect().await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            Ok::<_, Error>((status, body.to_bytes()))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| Error::Timeout)??;
        if !status.is_success() {
            interpret(status.as_u16(), &body)?;
        }
        String::from_utf8(body.to_vec()).map_err(|_| Error::UnexpectedResponse {
            status: status.as_u16(),
            detail: "the body is not UTF-8 text".into(),
        })
    }

    /// PUTs `body` to a presigned URL with exactly the headers it was signed with. Not the
    /// staff API: S3 (or the emulator), so neither the key nor a signature of ours goes along.
    pub async fn upload(&self, url: &str, headers: &[(String, String)], body: Bytes) -> Result<(), Error> {
        let uri: Uri = url.parse().map_err(|_| Error::Request("the upload URL is not a URL".into()))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) {
            return Err(Error::Request("the upload URL is not http(s)".into()));
        }
        let mut request = Request::builder().method(http::Method::PUT).uri(uri);
        for (name, value) in headers {
            // The length is the body's; a signed length that is not is a file that changed.
            if name.eq_ignore_ascii_case("content-length") && value.parse::<usize>().ok() != Some(body.len())
            {
                return Err(Error::Request("the upload was signed for another size".into()));
            }
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::new(body)).map_err(|e| Error::Request(e.to_string()))?;
        let exchange = async {
            let response =
                self.http.request(request).await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            let status = response.status();
            let body =
                response.into_body().collect().await.map_err(|e| Error::Transport(crate::error_chain(&e)))?;
            Ok::<_, Error>((status, body.to_bytes()))
        };
        let (status, body) =
            tokio::time::timeout(UPLOAD_TIMEOUT, exchange).await.map_err(|_| Error::Timeout)??;
        if status.is_success() {
            return Ok(());
        }
        // S3 answers XML: its <Code> says what was wrong (SignatureDoesNotMatch, AccessDenied…).
        let text = String::from_utf8_lossy(&body);
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_string())
            .unwrap_or_else(|| snippet(&body));
        Err(Error::Upload { status: status.as_u16(), detail: code })
    }
}

fn sign_request(
    request: &mut Request<Full<Bytes>>,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<(), Error> {
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::Signing(e.to_string()))?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.as_str(), value)))
        .collect();
    let signable =
        SignableRequest::new(request.method().as_str(), uri, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| Error::Signing(e.to_string()))?;
    let (instructions, _signature) =
        sign(signable, &params).map_err(|e| Error::Signing(e.to_string()))?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// A response's JSON, or the error it reports in the API's `{"error": {...}}` shape.
pub fn interpret(status: u16, body: &[u8]) -> Result<Value, Error> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        return json.ok_or_else(|| Error::UnexpectedResponse {
            status,
            detail: format!("the body is not JSON: {}", snippet(body)),
        });
    }
    let error = json.as_ref().and_then(|json| json.get("error"));
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_string);
    match (field("code"), field("message")) {
        (Some(code), message) => Err(Error::Api { status, code, message: message.unwrap_or_default() }),
        // API Gateway's own refusals (e.g. a bad signature) are {"message": "..."}.
        (None, _) => {
            let message = json
                .as_ref()
                .and_then(|json| json.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| snippet(body));
            Err(Error::UnexpectedResponse { status, detail: message })
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_the_servers_code_and_message() {
        let body = br#"{"error":{"code":"extension_too_late","message":"the deadline has passed"}}"#;
        match interpret(422, body) {
            Err(Error::Api { status, code, message }) => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (422, "extension_too_late", "the deadline has passed")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gateway_refusals_without_an_error_object_are_unexpected_responses() {
        let body = br#"{"message":"Forbidden"}"#;
        match interpret(403, body) {
            Err(Error::UnexpectedResponse { status: 403, detail }) => assert_eq!(detail, "Forbidden"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_success_that_is_not_json_is_an_unexpected_response() {
        assert!(matches!(interpret(200, b"<html>"), Err(Error::UnexpectedResponse { status: 200, .. })));
    }

    #[test]
    fn endpoints_must_be_http_urls_without_a_query() {
        let auth = || Auth::LocalKey("k".into());
        assert!(Client::new("ftp://example.com", auth()).is_err());
        assert!(Client::new("example.com", auth()).is_err());
        assert!(Client::new("http://127.0.0.1:9000/?x=1", auth()).is_err());
        assert!(Client::new("http://127.0.0.1:9000/", auth()).is_ok());
    }

    #[test]
    fn the_endpoints_stage_path_prefixes_every_call() {
        let client = Client::new("http://127.0.0.1:9000/prod/", Auth::LocalKey("k".into())).unwrap();
        let call =
            ApiCall { method: http::Method::GET, path_and_query: "/staff/requests".into(), body: None };
        let request = client.prepare(&call, SystemTime::now()).unwrap();
        assert_eq!(request.uri(), "http://127.0.0.1:9000/prod/staff/requests");
    }

    #[test]
    fn debug_output_never_shows_the_local_key_or_the_secret() {
        let local = format!("{:?}", Auth::LocalKey("hunter2".into()));
        assert!(!local.contains("hunter2"));
        let signed = format!(
            "{:?}",
            Auth::SigV4 {
                credentials: Credentials::new("AKIDTEST", "secret-value", Some("tok".into()), None, "test"),
                region: "eu-west-1".into(),
            }
        );
        assert!(!signed.contains("secret-value") && !signed.contains("tok\""), "{signed}");
    }
}
