//! Logging as Lambda's advanced logging controls expect (`AWS_LAMBDA_LOG_FORMAT`,
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`), with one guard of ours: the Lambda runtime logs each
//! raw invocation event, and the AWS SDK and the HTTP stack log request and response bodies, at
//! DEBUG and TRACE; those carry addresses, names and tokens. Their events above INFO are dropped
//! whatever level is asked for; our own crates keep the level asked for.

use std::str::FromStr;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `lambda_` covers `lambda_runtime` (the raw invocation event at TRACE), `lambda_http` and
/// `lambda_runtime_api_client`.
const BODY_LOGGING_TARGETS: &[&str] = &["aws_", "lambda_", "hyper", "h2", "rustls", "tower", "reqwest"];

/// True for events that may carry a request or response body.
fn may_carry_bodies(target: &str, level: &Level) -> bool {
    *level > Level::INFO && BODY_LOGGING_TARGETS.iter().any(|prefix| target.starts_with(prefix))
}

/// A subscriber writing to `writer` at `level` ("INFO" when unset or unreadable).
pub fn subscriber<W>(writer: W, level: Option<&str>, json: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level = LevelFilter::from_str(level.unwrap_or("INFO")).unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_env_filter(EnvFilter::builder().with_default_directive(level.into()).parse_lossy(""))
        .with_writer(writer);
    let guard = filter_fn(|meta| !may_carry_bodies(meta.target(), meta.level()));
    if json { Box::new(builder.json().finish().with(guard)) } else { Box::new(builder.finish().with(guard)) }
}

/// Installs the subscriber for a function, from Lambda's logging environment.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Fails only if a subscriber is already installed, which then keeps logging.
    let _ = subscriber(std::io::stdout, level.as_deref(), json).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_and_http_debug_and_trace_are_dropped_but_our_own_are_kept() {
        assert!(may_carry_bodies("aws_smithy_runtime::client::orchestrator", &Level::TRACE));
        assert!(may_carry_bodies("aws_sdk_dynamodb::config", &Level::DEBUG));
        assert!(may_carry_bodies("hyper_util::client", &Level::DEBUG));
        assert!(!may_carry_bodies("aws_smithy_runtime::client", &Level::INFO));
        assert!(!may_carry_bodies("aws_config", &Level::WARN));
        assert!(!may_carry_bodies("intake", &Level::TRACE));
        assert!(!may_carry_bodies("privacy_shared::store", &Level::DEBUG));
    }

    #[test]
    fn the_lambda_runtime_and_its_http_adapter_may_log_the_raw_event() {
        for target in [
            "lambda_runtime",
            "lambda_runtime::layers::api_client",
            "lambda_http",
            "lambda_runtime_api_client",
        ] {
            assert!(may_carry_bodies(target, &Level::TRACE), "{target}");
            assert!(may_carry_bodies(target, &Level::DEBUG), "{target}");
            assert!(!may_carry_bodies(target, &Level::INFO), "{target}");
        }
    }
}
