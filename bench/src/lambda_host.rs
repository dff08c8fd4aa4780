//! Hosts bootstraps the way Lambda runs them, one process per function: this program plays each
//! one's Lambda Runtime API on loopback and hands it one invocation at a time. Each invocation is
//! measured as Lambda bills it: its duration from the event's delivery to the response (billed:
//! rounded up to the millisecond), the CPU time the process spent on it, and the process's peak
//! resident memory (VmHWM, Lambda's "Max Memory Used") once it waits for its next event. What the
//! process writes to stdout and stderr (Lambda's log stream) is counted, not kept.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

/// How a function is started: its bootstrap, its limits from the template, and its environment
/// on top of this process's.
pub struct Spec {
    pub name: String,
    pub bootstrap: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub env: Vec<(String, String)>,
    /// Variables of this process the function must not inherit (the developer's credentials).
    pub env_remove: Vec<String>,
}

/// One invocation, as Lambda would bill and report it.
#[derive(Clone, Copy, Debug)]
pub struct Invocation {
    pub duration: Duration,
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    pub ok: bool,
}

impl Invocation {
    /// Lambda bills whole milliseconds, rounded up.
    pub fn billed_ms(&self) -> u64 {
        let micros = self.duration.as_micros();
        u64::try_from(micros.div_ceil(1000)).unwrap_or(u64::MAX).max(1)
    }
}

struct Api {
    timeout: Duration,
    arn: String,
    next_asked: mpsc::UnboundedSender<Instant>,
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    /// When the event under way was handed over.
    delivered: std::sync::Mutex<Option<Instant>>,
    answers: mpsc::UnboundedSender<Answer>,
}

/// (when, what, whether it was a response rather than an error)
type Answer = (Instant, Value, bool);

/// What an invocation waits on: the function's answer, then its asking for the next event.
struct Turn {
    answers: mpsc::UnboundedReceiver<Answer>,
    idle: mpsc::UnboundedReceiver<Instant>,
}

fn respond(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    response
}

async fn serve(api: Arc<Api>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if request.method() == hyper::Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = api.next_asked.send(Instant::now());
        let Some((id, event)) = api.events.lock().await.recv().await else {
            return Ok(respond(500, Bytes::new()));
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d + api.timeout).as_millis())
            .unwrap_or_default();
        let mut response = respond(200, Bytes::from(event.to_string()));
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", api.arn.clone()),
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned()),
            ("content-type", "application/json".to_owned()),
        ] {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        }
        if let Ok(mut delivered) = api.delivered.lock() {
            *delivered = Some(Instant::now());
        }
        return Ok(response);
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let now = Instant::now();
    if path.ends_with("/response") {
        let _ = api.answers.send((now, serde_json::from_slice(&body).unwrap_or(Value::Null), true));
    } else if path.ends_with("/error") {
        let error = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
        let _ = api.answers.send((now, error, false));
    }
    Ok(respond(202, Bytes::new()))
}

/// A running function: one process, one invocation at a time.
pub struct Hosted {
    pub name: String,
    pub memory_mb: u64,
    pub timeout: Duration,
    /// Process start until its first request for an event (Lambda's init, billed for custom runtimes).
    pub init: Duration,
    pid: u32,
    api: Arc<Api>,
    events: mpsc::UnboundedSender<(String, Value)>,
    /// Held for a whole invocation, so the function gets one at a time.
    turn: Mutex<Turn>,
    invocations: std::sync::Mutex<Vec<Invocation>>,
    log_bytes: Arc<AtomicU64>,
    child: Mutex<tokio::process::Child>,
    server: tokio::task::JoinHandle<()>,
}

fn count_output<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut from: R,
    into: Arc<AtomicU64>,
    echo: bool,
) {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            into.fetch_add(n as u64, Ordering::Relaxed);
            if echo {
                eprint!("{}", String::from_utf8_lossy(&buffer[..n]));
            }
        }
    });
}

impl Hosted {
    /// Starts the function and waits until it asks for its first event.
    pub async fn start(spec: Spec, echo_logs: bool) -> Result<Hosted> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (next_tx, mut next_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (answer_tx, answer_rx) = mpsc::unbounded_channel();
        let api = Arc::new(Api {
            timeout: spec.timeout,
            arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{}", spec.name),
            next_asked: next_tx,
            events: Mutex::new(event_rx),
            delivered: std::sync::Mutex::new(None),
            answers: answer_tx,
        });
        let served = api.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let api = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| serve(api.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });

        let started = Instant::now();
        let mut command = tokio::process::Command::new(&spec.bootstrap);
        command
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // As the template's LoggingConfig has it: JSON, the application at INFO.
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in &spec.env_remove {
            command.env_remove(name);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().with_context(|| format!("starting {}", spec.bootstrap.display()))?;
        let pid = child.id().context("no pid")?;
        let log_bytes = Arc::new(AtomicU64::new(0));
        if let Some(out) = child.stdout.take() {
            count_output(out, log_bytes.clone(), echo_logs);
        }
        if let Some(err) = child.stderr.take() {
            count_output(err, log_bytes.clone(), true);
        }
        let asked = tokio::time::timeout(Duration::from_secs(60), next_rx.recv())
            .await
            .with_context(|| format!("{} did not start within 60 s", spec.name))?
            .context("runtime API closed")?;
        Ok(Hosted {
            name: spec.name,
            memory_mb: spec.memory_mb,
            timeout: spec.timeout,
            init: asked - started,
            pid,
            api,
            events: event_tx,
            turn: Mutex::new(Turn { answers: answer_rx, idle: next_rx }),
            invocations: std::sync::Mutex::new(Vec::new()),
            log_bytes,
            child: Mutex::new(child),
            server,
        })
    }

    /// Invokes the function with `payload` (waiting for its turn) and measures the invocation.
    /// A function error is an `Err`, as Lambda reports it to the caller.
    pub async fn invoke(&self, payload: Value) -> Result<Value> {
        let mut turn = self.turn.lock().await;
        let Turn { answers, idle } = &mut *turn;
        let cpu_before = cpu_time(self.pid)?;
        self.events
            .send((uuid::Uuid::new_v4().to_string(), payload))
            .map_err(|_| anyhow::anyhow!("{} is gone", self.name))?;
        let patience = self.timeout + Duration::from_secs(30);
        let (answered, answer, ok) = tokio::time::timeout(patience, answers.recv())
            .await
            .with_context(|| format!("{} did not answer within {} s", self.name, patience.as_secs()))?
            .context("runtime API closed")?;
        let delivered = self.api.delivered.lock().ok().and_then(|mut d| d.take()).unwrap_or(answered);
        // Idle again (asking for its next event): its CPU time and high-water mark cover the work.
        tokio::time::timeout(Duration::from_secs(30), idle.recv())
            .await
            .with_context(|| format!("{} did not ask for its next event", self.name))?;
        let invocation = Invocation {
            duration: answered.saturating_duration_since(delivered),
            cpu: cpu_time(self.pid)?.saturating_sub(cpu_before),
            peak_rss_kib: peak_rss_kib(self.pid)?,
            ok,
        };
        if let Ok(mut all) = self.invocations.lock() {
            all.push(invocation);
        }
        if !ok {
            bail!("{} failed: {answer}", self.name);
        }
        Ok(answer)
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations.lock().map(|all| all.clone()).unwrap_or_default()
    }

    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    pub async fn stop(&self) {
        let _ = self.child.lock().await.kill().await;
        self.server.abort();
    }
}

/// The time a process's threads have run on a CPU (the first field of each thread's schedstat).
fn cpu_time(pid: u32) -> Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).context("the function's process is gone")? {
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else { continue };
        total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).context("schedstat")?;
    }
    Ok(Duration::from_nanos(total))
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_is_rounded_up_to_the_millisecond_and_never_zero() {
        let at = |micros| Invocation {
            duration: Duration::from_micros(micros),
            cpu: Duration::ZERO,
            peak_rss_kib: 0,
            ok: true,
        };
        assert_eq!(at(1_000).billed_ms(), 1);
        assert_eq!(at(1_001).billed_ms(), 2);
        assert_eq!(at(0).billed_ms(), 1);
        assert_eq!(at(41_999).billed_ms(), 42);
    }
}
