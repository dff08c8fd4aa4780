//! The local stand-in for API Gateway: the HTTP APIs of `infra/template.yaml` (their routes read
//! from the template, the source of truth), served on one port, each request turned into the
//! payload-format-2.0 event an HTTP API sends its Lambda integration and each answer turned back
//! into HTTP, as API Gateway does:
//!
//! - a request no route matches (path and method) gets API Gateway's own
//!   `404 {"message":"Not Found"}`, whatever the method (HTTP APIs have no 405);
//! - a body over 10 MB gets `413 {"message":"Request Entity Too Large"}` before any function runs;
//! - a body is passed as text (`isBase64Encoded: false`) only when its content type is one API
//!   Gateway treats as text (`text/*`, `application/json`, `application/xml`,
//!   `application/javascript`) and it is valid UTF-8; any other body (no content type,
//!   `application/x-www-form-urlencoded`, binary, bytes that are not UTF-8) goes base64-encoded
//!   with `isBase64Encoded: true`, so the function sees exactly the bytes that were sent. (AWS does
//!   not document what it does with a text type whose bytes are not UTF-8; base64 loses nothing.)
//! - header names lower-cased and repeated headers joined with commas; `Cookie` moves to
//!   `cookies`; `x-forwarded-for`/`-proto`/`-port` and `x-amzn-trace-id` added;
//! - the function's answer: `statusCode`, `headers`, `cookies` (one `set-cookie` each), `body`
//!   (base64-decoded when `isBase64Encoded`); a JSON answer without `statusCode` is a 200 with that
//!   JSON as body; format 2.0 has no `multiValueHeaders`, so they are ignored;
//! - a function that fails (an invocation error, or an answer that is not a valid response) gets
//!   `500 {"message":"Internal Server Error"}`, and one that outlasts the 30-second integration
//!   timeout `503 {"message":"Service Unavailable"}`.
//!
//! Not played: throttling (the stage's route settings), CORS (configured only with a web origin),
//! custom domains, and IAM authorisation on the staff API: no signature is checked and no
//! `authorizer` is put in the event, so the admin function falls back on its local key
//! (`x-staff-key`, `STAFF_LOCAL_KEY`), which it accepts only on the local stack.

use anyhow::{Context as _, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::pump::Invoker;
use crate::template::Template;

/// API Gateway's payload limit for HTTP APIs.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// The most an HTTP API waits for its integration.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The account the local stack plays (the emulator's).
const ACCOUNT_ID: &str = "123456789012";

/// One route of an HTTP API: `POST /requests/{id}/verify` to the binary `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The logical id of the `AWS::Serverless::HttpApi` it belongs to.
    pub api: String,
    pub method: String,
    /// As the template writes it, `{name}` for a path parameter.
    pub path: String,
    /// The binary the route invokes (the function's `BuildProperties.Binary`).
    pub function: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
}

impl Route {
    fn new(api: &str, method: &str, path: &str, function: &str) -> Result<Route> {
        let Some(rest) = path.strip_prefix('/') else { bail!("route path {path:?} does not start with /") };
        // The root route (`GET /`) has no segments at all.
        let segments = rest
            .split('/')
            .filter(|_| !rest.is_empty())
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name)
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Ok(Segment::Parameter(name.to_owned()))
                }
                // Greedy parameters ({proxy+}) and $default routes are not used by the template.
                Some(_) => bail!("route path {path:?}: only plain {{name}} parameters are played locally"),
                None if segment.is_empty() || segment.contains(['{', '}']) => {
                    bail!("route path {path:?} has an empty or malformed segment")
                }
                None => Ok(Segment::Literal(segment.to_owned())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Route {
            api: api.to_owned(),
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            function: function.to_owned(),
            segments,
        })
    }

    /// What API Gateway calls the route: `POST /requests`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters (percent-decoded) when `raw_path` is this route's.
    fn parameters(&self, raw_path: &str) -> Option<Vec<(String, String)>> {
        let rest = raw_path.strip_prefix('/')?;
        let given: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        if given.len() != self.segments.len() {
            return None;
        }
        let mut parameters = Vec::new();
        for (segment, raw) in self.segments.iter().zip(given) {
            match segment {
                Segment::Literal(literal) if literal == raw => {}
                Segment::Parameter(name) if !raw.is_empty() => {
                    let value = percent_decode_str(raw).decode_utf8().map(|v| v.into_owned());
                    parameters.push((name.clone(), value.unwrap_or_else(|_| raw.to_owned())));
                }
                _ => return None,
            }
        }
        Some(parameters)
    }

    fn literal_segments(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }
}

/// Every route of every HTTP API in the template.
#[derive(Clone, Debug)]
pub struct Routes {
    routes: Vec<Route>,
}

/// A route a request matched, with its path parameters.
#[derive(Debug)]
pub struct Matched<'a> {
    pub route: &'a Route,
    pub parameters: Vec<(String, String)>,
}

impl Routes {
    /// The `HttpApi` events of the template's functions (`ApiId: !Ref <api>`, `Path`, `Method`),
    /// each to its function's binary.
    pub fn from_template(template: &Template) -> Result<Routes> {
        let root = template.raw();
        let mut routes = Vec::new();
        for function in template.resources_of_type("AWS::Serverless::Function") {
            let resource = &root["Resources"][function.as_str()];
            let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
            for (name, event) in events {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let properties = &event["Properties"];
                let context = || format!("{function} event {:?}", name.as_str().unwrap_or_default());
                let api = match &properties["ApiId"] {
                    serde_norway::Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(str::to_owned),
                    _ => None,
                }
                .with_context(|| format!("{}: ApiId must be !Ref <HttpApi>", context()))?;
                if let Some(version) = properties["PayloadFormatVersion"].as_str()
                    && version != "2.0"
                {
                    bail!("{}: payload format {version} is not played locally (2.0 is)", context());
                }
                let path = properties["Path"].as_str().with_context(|| format!("{}: no Path", context()))?;
                let method =
                    properties["Method"].as_str().with_context(|| format!("{}: no Method", context()))?;
                let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .with_context(|| format!("{function} has no BuildProperties.Binary"))?;
                routes.push(Route::new(&api, method, path, binary).with_context(context)?);
            }
        }
        if routes.is_empty() {
            bail!("the template has no HttpApi routes");
        }
        Ok(Routes { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `raw_path`; where several match, the one with the most literal
    /// segments (API Gateway picks the most specific route).
    pub fn find(&self, method: &str, raw_path: &str) -> Option<Matched<'_>> {
        self.routes
            .iter()
            .filter(|route| route.method == method)
            .filter_map(|route| route.parameters(raw_path).map(|parameters| Matched { route, parameters }))
            .max_by_key(|matched| matched.route.literal_segments())
    }
}

/// What API Gateway knows of one request besides the route.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source: SocketAddr,
    /// The port the gateway listens on (`x-forwarded-port`).
    pub port: u16,
    pub request_id: &'a str,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Whether API Gateway passes a body of this content type as text (checked against AWS by others:
/// only these; everything else, no content type included, arrives base64-encoded).
fn is_text_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(essence.as_str(), "application/json" | "application/xml" | "application/javascript")
}

/// The body as the event carries it: text, or base64 with `isBase64Encoded`.
fn event_body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    match std::str::from_utf8(body) {
        Ok(text) if is_text_type(headers) => (Some(text.to_owned()), false),
        _ => (Some(STANDARD.encode(body)), true),
    }
}

fn header_text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// The payload-format-2.0 event API Gateway sends the route's function.
pub fn event(matched: &Matched<'_>, incoming: &Incoming<'_>) -> Value {
    let route = matched.route;
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in incoming.headers.keys() {
        let values: Vec<String> = incoming.headers.get_all(name).iter().map(header_text).collect();
        if *name == COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let source_ip = match incoming.source.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
    .to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(earlier) => format!("{earlier}, {source_ip}"),
        None => source_ip.clone(),
    };
    headers.insert("x-forwarded-for".into(), json!(forwarded_for));
    headers.insert("x-forwarded-proto".into(), json!("http"));
    headers.insert("x-forwarded-port".into(), json!(incoming.port.to_string()));
    let trace = incoming.request_id.replace('-', "");
    headers.insert(
        "x-amzn-trace-id".into(),
        json!(format!(
            "Root=1-{:08x}-{}",
            incoming.now.timestamp(),
            &trace[trace.len().saturating_sub(24)..]
        )),
    );
    let user_agent = headers.get("user-agent").and_then(Value::as_str).unwrap_or_default().to_owned();
    let domain = headers.get("host").and_then(Value::as_str).unwrap_or("127.0.0.1").to_owned();
    let domain_prefix = domain.split(['.', ':']).next().unwrap_or_default().to_owned();

    let mut query = Map::new();
    for pair in incoming.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (key, value) = (decode(key), decode(value));
        match query.get_mut(&key) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(key, Value::String(value));
            }
        }
    }

    let (body, is_base64) = event_body(incoming.headers, incoming.body);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": incoming.raw_path,
        "rawQueryString": incoming.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": route.api.to_ascii_lowercase(),
            "domainName": domain,
            "domainPrefix": domain_prefix,
            "http": {
                "method": incoming.method,
                "path": incoming.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": incoming.request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": incoming.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": incoming.now.timestamp_millis(),
        },
        "isBase64Encoded": is_base64,
    });
    // API Gateway leaves out what a request does not have, rather than sending null.
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !matched.parameters.is_empty() {
        event["pathParameters"] = matched.parameters.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// Why a function's answer cannot be turned into an HTTP response (API Gateway answers 500).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadAnswer {
    #[error("the function reported an error")]
    FunctionError,
    #[error("statusCode is not an HTTP status")]
    Status,
    #[error("header {0:?} is not a valid header")]
    Header(String),
    #[error("cookies is not a list of valid cookies")]
    Cookies,
    #[error("body is not a string")]
    Body,
    #[error("body is not valid base64 although isBase64Encoded is true")]
    Base64,
}

/// The HTTP response for a function's answer (payload format 2.0).
pub fn response_for(answer: &Value) -> Result<Response<Full<Bytes>>, BadAnswer> {
    let Some(object) = answer.as_object().filter(|o| o.contains_key("statusCode")) else {
        // An error the invoker passed through as the result (Lambda flags it; some local runtimes
        // answer it as a plain payload).
        if answer.get("errorType").is_some() || answer.get("errorMessage").is_some() {
            return Err(BadAnswer::FunctionError);
        }
        // "If your function returns valid JSON and doesn't return a statusCode": 200, as JSON.
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(response);
    };
    let status = object["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(BadAnswer::Status)?;
    let mut headers = HeaderMap::new();
    if let Some(given) = object.get("headers").filter(|h| !h.is_null()) {
        let given = given.as_object().ok_or_else(|| BadAnswer::Header("headers".into()))?;
        for (name, value) in given {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return Err(BadAnswer::Header(name.clone())),
            };
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadAnswer::Header(name.clone()))?;
            let value = HeaderValue::from_str(&text).map_err(|_| BadAnswer::Header(name.clone()))?;
            headers.insert(header, value);
        }
    }
    if let Some(cookies) = object.get("cookies").filter(|c| !c.is_null()) {
        for cookie in cookies.as_array().ok_or(BadAnswer::Cookies)? {
            let cookie =
                cookie.as_str().and_then(|c| HeaderValue::from_str(c).ok()).ok_or(BadAnswer::Cookies)?;
            headers.append(SET_COOKIE, cookie);
        }
    }
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if object.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            STANDARD.decode(text).map_err(|_| BadAnswer::Base64)?
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(_) => return Err(BadAnswer::Body),
    };
    // The length is the body's, whatever the function claimed.
    headers.remove(CONTENT_LENGTH);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// An answer of API Gateway's own: `{"message": "..."}`.
fn gateway_answer(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(json!({ "message": message }).to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_payload_bytes: usize,
    pub integration_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_payload_bytes: MAX_PAYLOAD_BYTES, integration_timeout: INTEGRATION_TIMEOUT }
    }
}

/// The HTTP APIs' routes in front of the functions an [`Invoker`] runs.
pub struct Gateway<I> {
    routes: Routes,
    invoker: I,
    settings: Settings,
}

impl<I: Invoker + 'static> Gateway<I> {
    pub fn new(routes: Routes, invoker: I) -> Gateway<I> {
        Gateway { routes, invoker, settings: Settings::default() }
    }

    pub fn with_settings(mut self, settings: Settings) -> Gateway<I> {
        self.settings = settings;
        self
    }

    /// Answers one request, as API Gateway would.
    pub async fn answer<B>(
        &self,
        request: http::Request<B>,
        source: SocketAddr,
        port: u16,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut response = self.route(request, source, port, &request_id).await;
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("apigw-requestid", id);
        }
        response
    }

    async fn route<B>(
        &self,
        request: http::Request<B>,
        source: SocketAddr,
        port: u16,
        request_id: &str,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let too_large = || gateway_answer(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        let declared: Option<usize> =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        if declared.is_some_and(|length| length > self.settings.max_payload_bytes) {
            return too_large();
        }
        let body = match Limited::new(body, self.settings.max_payload_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(_) => return gateway_answer(StatusCode::BAD_REQUEST, "Bad Request"),
        };
        let raw_path = parts.uri.path();
        let Some(matched) = self.routes.find(parts.method.as_str(), raw_path) else {
            return gateway_answer(StatusCode::NOT_FOUND, "Not Found");
        };
        let incoming = Incoming {
            method: parts.method.as_str(),
            raw_path,
            raw_query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body: &body,
            source,
            port,
            request_id,
            now: chrono::Utc::now(),
        };
        let event = event(&matched, &incoming);
        let route = matched.route;
        let invoked = tokio::time::timeout(
            self.settings.integration_timeout,
            self.invoker.invoke(&route.function, event),
        );
        // Never the path or query (ids, tokens) in the log: the route key says which route it was.
        match invoked.await {
            Err(_) => {
                eprintln!("gateway: {} -> 503: the integration timed out", route.key());
                gateway_answer(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            Ok(Err(err)) => {
                let reason: String = format!("{err:#}").chars().take(300).collect();
                eprintln!("gateway: {} -> 500: invoking {} failed: {reason}", route.key(), route.function);
                gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Ok(Ok(answer)) => response_for(&answer).unwrap_or_else(|bad| {
                eprintln!("gateway: {} -> 500: {} answered badly: {bad}", route.key(), route.function);
                gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }),
        }
    }

    /// Serves HTTP/1.1 on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> Result<()> {
        use hyper_util::rt::TokioIo;
        let port = listener.local_addr()?.port();
        loop {
            let (stream, source) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then go on serving.
                    eprintln!("gateway: accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let gateway = self.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let gateway = gateway.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(gateway.answer(request, source, port).await)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// `devstack gateway`: the template's HTTP APIs on `address`, invoking the functions through
/// `cargo lambda watch`'s invoke endpoint at `invoke_url`.
pub async fn run(address: &str, invoke_url: &str) -> Result<()> {
    let routes = Routes::from_template(&Template::load(&crate::template::default_path())?)?;
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("listening on {address}"))?;
    println!(
        "gateway: {} routes on http://{} (API Gateway HTTP API, payload format 2.0), functions invoked at {invoke_url}",
        routes.routes().len(),
        listener.local_addr()?
    );
    let gateway = Gateway::new(routes, crate::pump::HttpInvoker::new(invoke_url));
    Arc::new(gateway).serve(listener).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::from_template(&Template::load(&crate::template::default_path()).unwrap()).unwrap()
    }

    /// `[workspace.metadata.lambda.watch.router]` of the root Cargo.toml: (method, path, function).
    fn cargo_lambda_router() -> Vec<(String, String, String)> {
        let manifest =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
                .unwrap();
        let section = manifest
            .split("[workspace.metadata.lambda.watch.router]")
            .nth(1)
            .expect("the root Cargo.toml has a cargo lambda router");
        let quoted = |text: &str, after: &str| -> Option<String> {
            let rest = text.split_once(after)?.1.trim_start().strip_prefix('"')?;
            Some(rest.split_once('"')?.0.to_owned())
        };
        let mut routes = Vec::new();
        for line in section.lines().take_while(|l| !l.trim_start().starts_with('[')) {
            let Some(path) = quoted(line, "") else { continue };
            for entry in line.split('{').skip(1).filter(|e| e.contains("method")) {
                let method = quoted(entry, "method =").expect("a method");
                let function = quoted(entry, "function =").expect("a function");
                routes.push((method, path.clone(), function));
            }
        }
        routes
    }

    #[test]
    fn the_template_and_the_cargo_lambda_router_declare_the_same_routes() {
        let mut template: Vec<_> = routes()
            .routes()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.function.clone()))
            .collect();
        let mut router = cargo_lambda_router();
        template.sort();
        router.sort();
        assert_eq!(template.len(), 36, "{template:?}");
        assert_eq!(template, router);
    }

    #[test]
    fn a_route_matches_its_method_and_path_and_the_most_specific_route_wins() {
        let routes = routes();
        let verify = routes.find("POST", "/requests/abc/verify").unwrap();
        assert_eq!(verify.route.function, "verify");
        assert_eq!(verify.parameters, vec![("id".to_owned(), "abc".to_owned())]);
        assert_eq!(routes.find("GET", "/staff/requests/x").unwrap().route.key(), "GET /staff/requests/{id}");
        assert_eq!(routes.find("POST", "/staff/requests/x/deny").unwrap().route.api, "StaffApi");
        assert_eq!(routes.find("POST", "/requests").unwrap().route.api, "PublicApi");
        for (method, path) in [
            ("GET", "/requests"),
            ("HEAD", "/verify"),
            ("POST", "/requests/"),
            ("POST", "/requests//verify"),
            ("POST", "/requests/a/b/verify"),
            ("POST", "/nowhere"),
            ("OPTIONS", "/requests"),
        ] {
            assert!(routes.find(method, path).is_none(), "{method} {path}");
        }
        let literal = Route::new("A", "GET", "/pets/dog", "a").unwrap();
        let parameter = Route::new("A", "GET", "/pets/{id}", "b").unwrap();
        let both = Routes { routes: vec![parameter, literal] };
        assert_eq!(both.find("GET", "/pets/dog").unwrap().route.function, "a");
        assert_eq!(both.find("GET", "/pets/cat").unwrap().route.function, "b");
    }

    #[test]
    fn path_parameters_are_percent_decoded_and_the_raw_path_is_kept() {
        let routes = routes();
        let matched = routes.find("POST", "/requests/a%20b/verify").unwrap();
        assert_eq!(matched.parameters, vec![("id".to_owned(), "a b".to_owned())]);
        let headers = HeaderMap::new();
        let event = event(&matched, &incoming("POST", "/requests/a%20b/verify", "", &headers, b""));
        assert_eq!(event["rawPath"], "/requests/a%20b/verify");
        assert_eq!(event["pathParameters"]["id"], "a b");
    }

    fn incoming<'a>(
        method: &'a str,
        raw_path: &'a str,
        raw_query: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Incoming<'a> {
        Incoming {
            method,
            raw_path,
            raw_query,
            headers,
            body,
            source: "127.0.0.1:50000".parse().unwrap(),
            port: 9000,
            request_id: "0b7f4c1e-6c2a-4d7e-9f3e-2f1d8a9b0c11",
            now: chrono::DateTime::parse_from_rfc3339("2026-03-12T19:03:58.123Z").unwrap().to_utc(),
        }
    }

    #[test]
    fn the_event_is_payload_format_2_0_as_api_gateway_sends_it() {
        let routes = routes();
        let matched = routes.find("GET", "/requests/7d1e/download").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        headers.insert("user-agent", HeaderValue::from_static("curl/8"));
        headers.append("x-thing", HeaderValue::from_static("a"));
        headers.append("x-thing", HeaderValue::from_static("b"));
        headers.append(COOKIE, HeaderValue::from_static("c1=1; c2=2"));
        headers.append(COOKIE, HeaderValue::from_static("c3=3"));
        let event = event(
            &matched,
            &incoming("GET", "/requests/7d1e/download", "token=t&part=2&part=3&x=%41", &headers, b""),
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "GET /requests/{id}/download");
        assert_eq!(event["rawQueryString"], "token=t&part=2&part=3&x=%41");
        assert_eq!(event["queryStringParameters"], json!({"token": "t", "part": "2,3", "x": "A"}));
        assert_eq!(event["pathParameters"], json!({"id": "7d1e"}));
        assert_eq!(event["cookies"], json!(["c1=1", "c2=2", "c3=3"]));
        assert_eq!(event["headers"]["x-thing"], "a,b");
        assert_eq!(event["headers"]["user-agent"], "curl/8");
        assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
        assert!(event["headers"].get("cookie").is_none());
        assert!(event.get("body").is_none(), "no body, no key");
        assert_eq!(event["isBase64Encoded"], false);
        let context = &event["requestContext"];
        assert_eq!(
            context["http"],
            json!({"method": "GET", "path": "/requests/7d1e/download", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "curl/8"})
        );
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["routeKey"], "GET /requests/{id}/download");
        assert_eq!(context["time"], "12/Mar/2026:19:03:58 +0000");
        assert_eq!(context["timeEpoch"], 1_773_342_238_123_i64);
        assert_eq!(context["apiId"], "publicapi");
        assert!(context.get("authorizer").is_none(), "no authoriser is played");
    }

    #[test]
    fn only_utf8_bodies_of_text_types_travel_as_text() {
        let with_type = |content_type: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(ct) = content_type {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            headers
        };
        let json_type = with_type(Some("Application/JSON; charset=utf-8"));
        assert_eq!(event_body(&json_type, b"{\"a\":1}"), (Some("{\"a\":1}".to_owned()), false));
        assert_eq!(event_body(&with_type(Some("text/plain")), b"hi"), (Some("hi".to_owned()), false));
        assert_eq!(event_body(&json_type, b"\xff\xfe{"), (Some(STANDARD.encode(b"\xff\xfe{")), true));
        for binary in [None, Some("application/x-www-form-urlencoded"), Some("application/octet-stream")] {
            assert_eq!(event_body(&with_type(binary), b"a=1"), (Some("YT0x".to_owned()), true), "{binary:?}");
        }
        assert_eq!(event_body(&json_type, b""), (None, false));
    }

    #[test]
    fn a_function_answer_becomes_the_http_response() {
        let answer = json!({
            "statusCode": 422,
            "headers": {"content-type": "application/json", "x-count": 3},
            "multiValueHeaders": {"x-ignored": ["1"]},
            "cookies": ["a=1", "b=2; Secure"],
            "body": STANDARD.encode(b"{\"error\":{}}"),
            "isBase64Encoded": true,
        });
        let response = response_for(&answer).unwrap();
        assert_eq!(response.status(), 422);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["x-count"], "3");
        assert!(response.headers().get("x-ignored").is_none());
        let cookies: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2; Secure"]);
        let body = futures_body(response);
        assert_eq!(body, b"{\"error\":{}}");

        let text = response_for(&json!({"statusCode": 200, "body": "<p>hi</p>"})).unwrap();
        assert_eq!(futures_body(text), b"<p>hi</p>");
        let bare = response_for(&json!({"ok": true})).unwrap();
        assert_eq!(bare.status(), 200);
        assert_eq!(bare.headers()["content-type"], "application/json");
        assert_eq!(futures_body(bare), b"{\"ok\":true}");
    }

    #[test]
    fn a_malformed_or_failed_answer_is_refused() {
        for (answer, why) in [
            (json!({"errorType": "Panic", "errorMessage": "boom"}), BadAnswer::FunctionError),
            (json!({"statusCode": "200"}), BadAnswer::Status),
            (json!({"statusCode": 99}), BadAnswer::Status),
            (json!({"statusCode": 200, "headers": {"bad name": "x"}}), BadAnswer::Header("bad name".into())),
            (json!({"statusCode": 200, "headers": {"x": "a\nb"}}), BadAnswer::Header("x".into())),
            (json!({"statusCode": 200, "cookies": "a=1"}), BadAnswer::Cookies),
            (json!({"statusCode": 200, "body": {"a": 1}}), BadAnswer::Body),
            (json!({"statusCode": 200, "body": "!!", "isBase64Encoded": true}), BadAnswer::Base64),
        ] {
            assert_eq!(response_for(&answer).err(), Some(why), "{answer}");
        }
    }

    fn futures_body(response: Response<Full<Bytes>>) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(response.into_body().collect()).unwrap().to_bytes().to_vec()
    }
}
