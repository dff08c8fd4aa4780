//! The HTTP edge every public function shares: the JSON error shape, strict JSON bodies, and
//! responses that never echo what the caller sent.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt;

pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A response the caller can act on: `{"error": {"code": "...", "message": "..."}}`.
/// Messages are ours; they never quote the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 422: the body is JSON of the right shape, but a value is not acceptable.
    pub fn invalid_field(field: &str, why: &str) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", format!("`{field}` {why}"))
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        )
    }

    /// For failures of ours: the caller learns it is not their fault, nothing more.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is temporarily unavailable. Please try again later.",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        json_response(self.status, &body)
    }
}

/// The request id of a `/requests/{id}/<action>` route: from the route's path parameter, or from
/// the path itself where the router passes none. Anything but a canonical id is a 404.
pub fn path_request_id(request: &Request, action: &str) -> Result<crate::domain::RequestId, ApiError> {
    let from_params = request.path_parameters_ref().and_then(|p| p.first("id").map(str::to_owned));
    let raw = from_params.or_else(|| {
        let segments: Vec<&str> = request.uri().path().trim_end_matches('/').split('/').collect();
        match segments.as_slice() {
            [.., "requests", id, last] if *last == action => Some((*id).to_owned()),
            _ => None,
        }
    });
    raw.and_then(|id| crate::domain::RequestId::parse(&id).ok()).ok_or_else(ApiError::not_found)
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":{"code":"internal","message":"Internal error."}}"#.to_vec(),
        ),
    };
    let mut response = Response::new(Body::Binary(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The body's bytes, refused when over [`MAX_BODY_BYTES`].
pub fn body_within_limit(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body must be at most {MAX_BODY_BYTES} bytes."),
        ));
    }
    Ok(bytes)
}

/// Reads a body that must be a JSON object with only the given fields, into `T`.
/// Order of checks: media type, size, UTF-8, syntax and duplicate keys, shape, unknown fields, types.
pub fn read_json<T: DeserializeOwned>(req: &Request, allowed_fields: &[&str]) -> Result<T, ApiError> {
    require_json_content_type(req)?;
    let bytes = body_within_limit(req)?;
    if bytes.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "The body is empty."));
    }
    let value = parse_unique_keys(bytes)?;
    let Value::Object(object) = &value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "The body must be a JSON object.",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed_fields.contains(&k.as_str())) {
        let message = if is_printable_field_name(unknown) {
            format!("Unknown field `{unknown}`; allowed fields are {}.", allowed_fields.join(", "))
        } else {
            format!("Unknown field; allowed fields are {}.", allowed_fields.join(", "))
        };
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", message));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = public_path(err.path());
        let inner = err.into_inner().to_string();
        // serde's "missing field `x`" names only our own field; its other messages quote values.
        if path == "." && inner.starts_with("missing field") {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_field",
                format!("{}.", capitalise(&inner)),
            )
        } else {
            ApiError::invalid_field(&path, "has the wrong type.")
        }
    })
}

/// Parses JSON, refusing any object (at any depth) that names a key twice. serde_json keeps the
/// last copy where a gateway, WAF or log pipeline in front of us may keep the first: two parsers
/// reading one body two ways is how a checked value gets swapped for an unchecked one.
fn parse_unique_keys(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match UniqueKeys::deserialize(&mut de).and_then(|UniqueKeys(value)| de.end().map(|()| value)) {
        Ok(value) => Ok(value),
        // Syntax, encoding and end-of-input problems are not data errors; the only data error
        // a JSON value can raise is ours.
        Err(err) if err.is_data() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "duplicate_key",
            "The body names the same key more than once in one object.",
        )),
        Err(_) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "The body is not valid UTF-8 JSON."))
        }
    }
}

/// A JSON value whose objects have unique keys.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON has no non-finite numbers, so this never refuses a body serde_json accepts.
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // Keys arrive unescaped, so `"a"` and `"\u0061"` are caught as the same key.
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn require_json_content_type(req: &Request) -> Result<(), ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The body must be sent as Content-Type: application/json.",
        )
    };
    let value =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(unsupported());
    }
    for param in parts {
        let (name, val) = param.split_once('=').ok_or_else(unsupported)?;
        let val = val.trim().trim_matches('"');
        if !name.trim().eq_ignore_ascii_case("charset") || !val.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported());
        }
    }
    Ok(())
}

/// The path of a value to name in a message. A map's keys are the caller's (a correction's key may
/// be anything, an address too), so a key is named only when it is a plain field name, like an
/// unknown field; any other is `?`.
fn public_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } if is_printable_field_name(key) => key,
            _ => "?",
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

pub(crate) fn is_printable_field_name(name: &str) -> bool {
    (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        email: String,
        #[allow(dead_code)]
        name: Option<String>,
    }

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder().method("POST").uri("/requests");
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    fn code_of(req: Request) -> (StatusCode, &'static str, String) {
        let err = read_json::<Probe>(&req, &["email", "name"]).unwrap_err();
        (err.status, err.code, err.message)
    }

    #[test]
    fn accepts_json_with_or_without_a_utf8_charset() {
        for ct in
            ["application/json", "Application/JSON; charset=UTF-8", "application/json;charset=\"utf-8\""]
        {
            assert!(
                read_json::<Probe>(&request(Some(ct), r#"{"email":"a@b.co"}"#), &["email", "name"]).is_ok(),
                "{ct}"
            );
        }
    }

    #[test]
    fn refuses_other_media_types() {
        for ct in
            [None, Some("text/plain"), Some("application/json; charset=latin1"), Some("application/jsonx")]
        {
            assert_eq!(code_of(request(ct, r#"{"email":"a@b.co"}"#)).1, "unsupported_media_type", "{ct:?}");
        }
    }

    #[test]
    fn messages_never_quote_the_values_sent() {
        let (status, code, message) = code_of(request(Some("application/json"), r#"{"email": 12345678}"#));
        assert_eq!((status, code), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"));
        assert!(!message.contains("12345678"), "{message}");
        let (_, code, message) =
            code_of(request(Some("application/json"), r#"{"email":"a@b.co","x@secret.test":1}"#));
        assert_eq!(code, "unknown_field");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let (_, code, message) = code_of(request(Some("application/json"), r#"{"name":"A"}"#));
        assert_eq!(code, "missing_field");
        assert_eq!(message, "Missing field `email`.");
    }

    #[test]
    fn a_key_sent_twice_at_any_depth_is_refused_rather_than_one_copy_chosen() {
        for body in [
            r#"{"email":"a@b.co","email":"c@d.co"}"#,
            r#"{"email":"a@b.co","\u0065mail":"c@d.co"}"#,
            r#"{"email":"a@b.co","name":{"first":"A","first":"B"}}"#,
            r#"{"email":"a@b.co","name":[{"x":{"y":1,"y":2}}]}"#,
        ] {
            let (status, code, message) = code_of(request(Some("application/json"), body));
            assert_eq!((status, code), (StatusCode::BAD_REQUEST, "duplicate_key"), "{body}");
            assert!(!message.contains("email") && !message.contains("first"), "{message}");
        }
        // The same name in different objects is no duplicate.
        let nested = r#"{"email":"a@b.co","name":null}"#;
        assert!(read_json::<Probe>(&request(Some("application/json"), nested), &["email", "name"]).is_ok());
        let value: Value = read_json(
            &request(Some("application/json"), r#"{"a":{"k":1.5,"n":[{"k":-2},{"k":"s"}]},"k":true}"#),
            &["a", "k"],
        )
        .unwrap();
        assert_eq!(value, serde_json::json!({"a":{"k":1.5,"n":[{"k":-2},{"k":"s"}]},"k":true}));
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let big = format!(r#"{{"email":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(code_of(request(Some("application/json"), &big)).0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn error_responses_have_the_public_shape() {
        let response = ApiError::not_found().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert!(body["error"]["message"].is_string());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    /// The shape of the intake body: strings, optional strings and a map with keys of the
    /// requester's choosing.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Submission {
        email: String,
        kind: String,
        name: Option<String>,
        corrections: Option<BTreeMap<String, String>>,
    }

    const FIELDS: &[&str] = &["email", "kind", "name", "corrections"];

    fn request(content_type: Option<&str>, path: &str, body: Body) -> Request {
        let mut builder = lambda_http::http::Request::builder().method("POST").uri(path);
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).unwrap()
    }

    fn json_request(body: impl Into<String>) -> Request {
        request(Some("application/json"), "/requests", Body::Text(body.into()))
    }

    /// JSON without floats (whose text does not always read back to the same bits).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value that is not a string, for a field that must be one.
    fn not_a_string() -> impl Strategy<Value = Value> {
        json_value().prop_filter("not a string or null", |v| !v.is_string() && !v.is_null())
    }

    fn status_of(result: Result<Value, ApiError>) -> Result<(), ApiError> {
        result.map(|_| ())
    }

    /// Every refusal is the caller's fault (4xx) and has the public error shape.
    fn assert_client_error(err: &ApiError) -> Result<(), TestCaseError> {
        prop_assert!(err.status.is_client_error(), "{:?}", err);
        let response = err.clone().into_response();
        prop_assert_eq!(response.status(), err.status);
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        prop_assert_eq!(body["error"]["code"].as_str(), Some(err.code));
        Ok(())
    }

    proptest! {
        #[test]
        fn read_json_never_panics_and_refuses_with_a_4xx(
            content_type in prop_oneof![
                Just(None),
                Just(Some("application/json".to_owned())),
                Just(Some("application/json; charset=utf-8".to_owned())),
                "[ -~]{0,40}".prop_map(Some),
            ],
            body in prop::collection::vec(any::<u8>(), 0..256),
            as_text in any::<bool>(),
        ) {
            let body = match String::from_utf8(body) {
                Ok(text) if as_text => Body::Text(text),
                Ok(text) => Body::Binary(text.into_bytes()),
                Err(err) => Body::Binary(err.into_bytes()),
            };
            let req = request(content_type.as_deref(), "/requests", body);
            if let Err(err) = read_json::<Submission>(&req, FIELDS) {
                assert_client_error(&err)?;
            }
            if let Err(err) = status_of(read_json::<Value>(&req, FIELDS)) {
                assert_client_error(&err)?;
            }
        }

        /// Any JSON document: accepted exactly when it is an object naming only allowed fields,
        /// and then read as sent.
        #[test]
        fn any_json_document_is_read_as_sent_or_refused_with_the_right_code(value in json_value(), allowed in prop::collection::vec("[a-z]{1,3}", 0..4)) {
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            prop_assume!(value.to_string().len() <= MAX_BODY_BYTES);
            let result = read_json::<Value>(&json_request(value.to_string()), &allowed);
            match &value {
                Value::Object(object) if object.keys().all(|k| allowed.contains(&k.as_str())) => {
                    prop_assert_eq!(result.unwrap(), value.clone());
                }
                Value::Object(_) => {
                    let err = result.unwrap_err();
                    prop_assert_eq!((err.status, err.code), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
                }
                _ => {
                    let err = result.unwrap_err();
                    prop_assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "malformed_json"));
                }
            }
        }

        #[test]
        fn an_unknown_field_is_refused_and_named_only_when_it_is_a_plain_name(
            unknown in any::<String>(),
        ) {
            prop_assume!(!FIELDS.contains(&unknown.as_str()));
            let body = serde_json::json!({"email": "a@b.co", "kind": "access", unknown.clone(): 1});
            let err = read_json::<Submission>(&json_request(body.to_string()), FIELDS).unwrap_err();
            prop_assert_eq!((err.status, err.code), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
            let allowed = "allowed fields are email, kind, name, corrections.";
            let expected = if is_printable_field_name(&unknown) {
                format!("Unknown field `{unknown}`; {allowed}")
            } else {
                format!("Unknown field; {allowed}")
            };
            prop_assert_eq!(err.message, expected);
        }

        #[test]
        fn a_field_of_the_wrong_type_is_refused_without_quoting_it(
            field in prop::sample::select(vec!["email", "kind", "name", "corrections"]),
            value in not_a_string(),
        ) {
            prop_assume!(!(field == "corrections" && value.as_object().is_some_and(|o| o.values().all(Value::is_string))));
            let mut body = serde_json::json!({"email": "a@b.co", "kind": "access"});
            body[field] = value.clone();
            prop_assume!(body.to_string().len() <= MAX_BODY_BYTES);
            let err = read_json::<Submission>(&json_request(body.to_string()), FIELDS).unwrap_err();
            prop_assert_eq!((err.status, err.code), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"));
            prop_assert!(err.message.starts_with(&format!("`{field}")), "{}", err.message);
            let sent = value.to_string();
            if sent.len() > 3 {
                prop_assert!(!err.message.contains(&sent), "{}", err.message);
            }
        }

        /// The strings a caller sends all hold `@` here, and none of our messages does: a refusal
        /// that quotes the body, a key of a map included, shows up as an `@`.
        #[test]
        fn no_refusal_quotes_what_was_sent(
            email in prop_oneof![any::<String>().prop_map(|s| Value::String(format!("{s}@"))), not_a_string()],
            corrections in prop::collection::btree_map(
                any::<String>().prop_map(|s| format!("{s}@x")),
                prop_oneof![any::<String>().prop_map(|s| Value::String(format!("@{s}"))), not_a_string()],
                0..4,
            ),
            extra in prop::option::of(any::<String>().prop_map(|s| format!("@{s}"))),
        ) {
            let mut body = serde_json::json!({"email": email, "kind": "@access", "corrections": corrections});
            if let Some(extra) = extra {
                body[extra] = Value::from(1);
            }
            if let Err(err) = read_json::<Submission>(&json_request(body.to_string()), FIELDS) {
                assert_client_error(&err)?;
                prop_assert!(!err.message.contains('@'), "{}", err.message);
            }
        }

        #[test]
        fn a_key_named_twice_at_any_depth_is_refused(
            key in "[a-z\u{e9}]{1,5}",
            escaped in any::<bool>(),
            depth in 0..4usize,
            first in json_value(),
            second in json_value(),
        ) {
            let again = if escaped {
                key.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
            } else {
                key.clone()
            };
            let mut doc = format!(r#"{{"{key}":{first},"{again}":{second}}}"#);
            for level in 0..depth {
                doc = if level % 2 == 0 { format!("[1,{doc}]") } else { format!(r#"{{"k":{doc}}}"#) };
            }
            let body = format!(r#"{{"email":{doc}}}"#);
            prop_assume!(body.len() <= MAX_BODY_BYTES);
            let err = read_json::<Value>(&json_request(body), &["email"]).unwrap_err();
            prop_assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "duplicate_key"));
        }

        #[test]
        fn a_body_over_the_limit_is_refused_before_it_is_read(extra in 1..2048usize, byte in any::<u8>()) {
            let body = vec![byte; MAX_BODY_BYTES + extra];
            let req = request(Some("application/json"), "/requests", Body::Binary(body));
            let err = read_json::<Value>(&req, FIELDS).unwrap_err();
            prop_assert_eq!((err.status, err.code), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
        }

        #[test]
        fn any_other_media_type_is_refused(content_type in "[ -~]{0,40}") {
            let essence = content_type.split(';').next().unwrap().trim();
            prop_assume!(!essence.eq_ignore_ascii_case("application/json"));
            let req = request(Some(&content_type), "/requests", Body::Text(r#"{"email":"a@b.co"}"#.into()));
            let err = read_json::<Value>(&req, FIELDS).unwrap_err();
            prop_assert_eq!((err.status, err.code), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
        }

        #[test]
        fn the_path_id_is_read_from_the_path_or_its_parameter(
            id in any::<u128>().prop_map(|n| crate::domain::RequestId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()),
            stage in prop::sample::select(vec!["", "/prod", "/v1/api"]),
            slash in prop::sample::select(vec!["", "/"]),
            action in prop::sample::select(vec!["verify", "preview", "download"]),
            asked in prop::sample::select(vec!["verify", "preview", "download"]),
        ) {
            let path = format!("{stage}/requests/{id}/{action}{slash}");
            let req = request(None, &path, Body::Empty);
            let read = path_request_id(&req, asked);
            if action == asked {
                prop_assert_eq!(read, Ok(id));
            } else {
                prop_assert_eq!(read.unwrap_err().status, StatusCode::NOT_FOUND);
            }
            let with_param = request(None, "/anything", Body::Empty)
                .with_path_parameters(HashMap::from([("id".to_owned(), id.to_string())]));
            prop_assert_eq!(path_request_id(&with_param, asked), Ok(id));
        }

        #[test]
        fn any_path_or_parameter_is_a_canonical_id_or_a_404(
            segments in prop::collection::vec(
                prop_oneof![
                    // Path characters (RFC 3986 pchar), the route's own words, and ids in several spellings.
                    "[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,40}",
                    prop::sample::select(vec!["requests", "verify", "download", "", ".."]).prop_map(str::to_owned),
                    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
                    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
                    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
                ],
                0..6,
            ),
            param in prop::option::of(prop_oneof![
                any::<String>(),
                any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
            ]),
            action in prop::sample::select(vec!["verify", "download"]),
        ) {
            let path = format!("/{}", segments.join("/"));
            prop_assume!(path.parse::<lambda_http::http::Uri>().is_ok());
            let mut req = request(None, &path, Body::Empty);
            if let Some(param) = &param {
                req = req.with_path_parameters(HashMap::from([("id".to_owned(), param.clone())]));
            }
            match path_request_id(&req, action) {
                Ok(id) => {
                    let raw = param.clone().unwrap_or_else(|| path.clone());
                    prop_assert!(raw.contains(&id.to_string()));
                }
                Err(err) => prop_assert_eq!(err, ApiError::not_found()),
            }
        }
    }

    /// Found by `no_refusal_quotes_what_was_sent`: the path of a value of the wrong type named the
    /// map key it was under, and a correction's key is whatever the requester sent.
    #[test]
    fn a_wrong_value_under_a_key_of_the_callers_choosing_does_not_name_the_key() {
        let body = r#"{"email":"a@b.co","kind":"access","corrections":{"jan@example.nl":5}}"#;
        let err = read_json::<Submission>(&json_request(body), FIELDS).unwrap_err();
        assert_eq!((err.status, err.code), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"));
        assert_eq!(err.message, "`corrections.?` has the wrong type.");
        let plain = r#"{"email":"a@b.co","kind":"access","corrections":{"phone":[1]}}"#;
        let err = read_json::<Submission>(&json_request(plain), FIELDS).unwrap_err();
        assert_eq!(err.message, "`corrections.phone` has the wrong type.");
    }
}
