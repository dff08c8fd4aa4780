//! A handler served over real HTTP on 127.0.0.1, for clients that cannot call it in-process (a
//! browser): each request becomes a `lambda_http::Request` as API Gateway would deliver it (query
//! parameters parsed; the handlers read the id from the path), each answer goes back as is, with
//! its headers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, RequestExt, Response};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A running server: its base URL and what it was asked.
pub struct Served {
    pub base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Method and path (with query) of every request so far, in order, e.g. `GET /verify?lang=nl`.
    /// Never bodies: they carry tokens.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The `POST`s so far, by path.
    pub fn posts(&self) -> Vec<String> {
        self.seen().into_iter().filter_map(|r| r.strip_prefix("POST ").map(str::to_owned)).collect()
    }
}

/// Serves `handler` on a free port until the test's runtime ends.
pub async fn serve<H, F>(handler: H) -> Served
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let log = log.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                        log.lock().unwrap().push(format!("{} {target}", parts.method));
                        let query: HashMap<String, String> = parts
                            .uri
                            .query()
                            .map(|q| {
                                reqwest::Url::parse(&format!("http://query.invalid/?{q}"))
                                    .map(|u| u.query_pairs().into_owned().collect())
                                    .unwrap_or_default()
                            })
                            .unwrap_or_default();
                        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let body = if bytes.is_empty() { Body::Empty } else { Body::from(bytes.to_vec()) };
                        let request = Request::from_parts(parts, body).with_query_string_parameters(query);
                        let (parts, body) = handler(request).await.into_parts();
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
    Served { base, seen }
}

/// The verify function (its page and its routes) over HTTP.
pub async fn serve_verifier(verifier: super::LocalVerifier) -> Served {
    let verifier = Arc::new(verifier);
    serve(move |request| {
        let verifier = verifier.clone();
        async move { verify::handle(&verifier, request).await.unwrap_or_else(|never| match never {}) }
    })
    .await
}
