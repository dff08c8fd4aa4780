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

/// Reads a body that must be a JSON object with only the given fields, into `T`.
/// Order of checks: media type, size, UTF-8, syntax and duplicate keys, shape, unknown fields, types.
pub fn read_json<T: DeserializeOwned>(req: &Request, allowed_fields: &[&str]) -> Result<T, ApiError> {
    require_json_content_type(req)?;
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
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
        let path = err.path().to_string();
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

fn is_printable_field_name(name: &str) -> bool {
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
