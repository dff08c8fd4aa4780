//! The staff CLI against the real staff API handler, served over HTTP in-process the way the local
//! stack serves it (with the local key; the IAM path is API Gateway's, its signing is tested in the
//! CLI's own tests): what the CLI sends, the API understands, and what it answers, the CLI prints.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::RequestExt;
use std::collections::HashMap;
use std::sync::Arc;

use crate::support::*;
use privacy_shared::domain::Status;

pub(crate) const KEY: &str = "cli-test-key-0123456789abcdef";

/// Serves `admin` on a free port; returns its base URL.
pub(crate) async fn serve(admin: AwsAdmin) -> String {
    let admin = Arc::new(admin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let admin = admin.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let admin = admin.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let query: HashMap<String, String> = parts
                            .uri
                            .query()
                            .unwrap_or("")
                            .split('&')
                            .filter_map(|p| p.split_once('='))
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect();
                        let request =
                            lambda_http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()))
                                .with_query_string_parameters(query);
                        let response = admin::handle(&admin, request).await.unwrap();
                        let (parts, body) = response.into_parts();
                        Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                            parts,
                            Full::new(Bytes::copy_from_slice(body.as_ref())),
                        ))
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    base
}

pub(crate) async fn local_admin(stack: &Stack) -> String {
    let env = stack.env(&[
        ("STAFF_LOCAL_KEY", KEY.to_owned()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000".to_owned()),
    ]);
    let settings = privacy_shared::config::AdminSettings::load(&env).unwrap();
    serve(admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone())).await
}

/// Runs `staff --endpoint <base> --local-key <key> args...`; returns exit code, stdout, stderr.
pub(crate) async fn cli(base: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["staff", "--endpoint", base, "--local-key", key];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = staff_cli::run(argv, staff_cli::CredentialSource::AwsChain, &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[tokio::test]
async fn staff_list_show_and_extend_through_the_cli() {
    let stack = Stack::new().await;
    let address = unique_address("cli");
    let id = verified_request(&stack, &address, "rectification", "NL").await;
    let base = local_admin(&stack).await;
    let id_text = id.to_string();

    let (code, out, err) = cli(&base, KEY, &["list", "--status", "verified"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id_text) && out.contains("2026-12-28") && out.contains("rectification"), "{out}");

    let (code, out, _) = cli(&base, KEY, &["show", &id_text]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&address) && out.contains("submitted") && out.contains("verified"), "{out}");

    let reason = "Three systems hold your records.";
    let (code, out, err) =
        cli(&base, KEY, &["extend", &id_text, "--until", "2027-01-28", "--reason", reason]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2027-01-28"), "{out}");
    let record = stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.due_on.to_string(), "2027-01-28");
    assert_eq!(record.extension_reason.as_deref(), Some(reason));

    let (code, out, err) = cli(&base, KEY, &["list", "--all"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2027-01-28 (ext.)"), "{out}");
}

#[tokio::test]
async fn refusals_reach_the_staff_member_as_an_error_code_and_exit_1() {
    let stack = Stack::new().await;
    let id = verified_request(&stack, &unique_address("cli-refused"), "objection", "NL").await;
    let base = local_admin(&stack).await;
    let id_text = id.to_string();

    let (code, _, err) =
        cli(&base, KEY, &["extend", &id_text, "--until", "2027-06-01", "--reason", "r"]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: extension_too_long:"), "{err}");

    let (code, _, err) = cli(&base, "wrong-key-0123456789abcdefgh", &["show", &id_text]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: unauthenticated:"), "{err}");

    let (code, _, _) = cli(&base, KEY, &["deny", &id_text, "--reason", "Not ours to change."]).await;
    assert_eq!(code, 0);
    let (code, _, err) = cli(&base, KEY, &["deny", &id_text, "--reason", "Again."]).await;
    assert_eq!((code, err.starts_with("error: invalid_state:")), (1, true), "{err}");
    assert_eq!(stack.deps().store.get(id).await.unwrap().unwrap().status, Status::Denied);
}
