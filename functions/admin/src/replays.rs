//! Replays of the erasures after a restore (CCPA regulations §7022(d); the model is in
//! [`privacy_shared::tombstones`]). Staff name the moment the restored backup was taken from;
//! the run is recorded in the tombstones table and its job sent to the erasure function, which
//! re-applies every erasure completed since and keeps the receipt in the run item.
//!
//! | route                                   | what                                          |
//! |-----------------------------------------|-----------------------------------------------|
//! | `POST /staff/erasures/replays`          | `{"since": DATE}`: start a replay (202, a run) |
//! | `GET /staff/erasures/replays/{run}`     | where the run stands, and its receipt         |

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::config::ReplaySettings;
use privacy_shared::jobs::{JobQueue, ReplayJob, SqsJobQueue};
use privacy_shared::tombstones::{DynamoTombstones, ReplayRun, ReplayRunId, TombstoneRetention, parse_since};

use crate::{Admin, AdminError};

/// Where replays are recorded and sent, and how far back one may reach.
pub struct Replays {
    pub book: DynamoTombstones,
    pub queue: SqsJobQueue,
    pub retention: TombstoneRetention,
}

impl Replays {
    pub fn new(sdk: &aws_config::SdkConfig, settings: &ReplaySettings) -> Replays {
        Replays {
            book: DynamoTombstones::new(aws_sdk_dynamodb::Client::new(sdk), settings.table.clone()),
            queue: SqsJobQueue::with_sdk(sdk, String::new(), settings.erasure_queue_url.clone()),
            retention: settings.retention,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReplayRoute {
    Start,
    Receipt(ReplayRunId),
}

/// `/staff/erasures/replays` and `/staff/erasures/replays/{run}` (a canonical run id, else no
/// route: a 404).
pub(crate) fn route(segments: &[&str]) -> Option<Option<ReplayRoute>> {
    let at = segments.windows(3).rposition(|w| w == ["staff", "erasures", "replays"])?;
    Some(match &segments[at + 3..] {
        [] => Some(ReplayRoute::Start),
        [run] => ReplayRunId::parse(run).ok().map(ReplayRoute::Receipt),
        _ => None,
    })
}

#[derive(Deserialize)]
struct StartBody {
    since: String,
}

pub(crate) async fn serve<S>(
    admin: &Admin<S>,
    request: &Request,
    route: ReplayRoute,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let method = request.method();
    if !matches!(
        (&route, method),
        (ReplayRoute::Start, &Method::POST) | (ReplayRoute::Receipt(_), &Method::GET)
    ) {
        return Err(ApiError::method_not_allowed().into());
    }
    // The in-memory stack keeps no tombstones.
    let replays = admin.replays.as_ref().ok_or_else(ApiError::unavailable)?;
    match route {
        ReplayRoute::Start => start(admin, replays, request, principal).await,
        ReplayRoute::Receipt(id) => {
            let run = replays.book.replay(id).await?.ok_or_else(ApiError::not_found)?;
            Ok(json_response(StatusCode::OK, &view(&run)))
        }
    }
}

async fn start<S>(
    admin: &Admin<S>,
    replays: &Replays,
    request: &Request,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let body: StartBody = read_json(request, &["since"])?;
    let since = parse_since(&body.since).ok_or_else(|| {
        ApiError::invalid_field("since", "must be a date (2026-11-20) or a time (2026-11-20T08:30:00Z).")
    })?;
    let now = admin.clock.now();
    if since > now {
        return Err(unprocessable(
            "since_in_future",
            "`since` is the moment the restored backup was taken: it cannot be in the future.".to_owned(),
        )
        .into());
    }
    if since < now - replays.retention.duration() {
        return Err(unprocessable(
            "since_beyond_retention",
            format!(
                "Tombstones are kept {} days: erasures before then cannot be replayed. Restore a later backup, \
                 or raise TombstoneRetentionDays before relying on older ones.",
                replays.retention.as_days()
            ),
        )
        .into());
    }
    let run = ReplayRun::queued(since, now, &principal);
    if !replays.book.start_replay(&run).await? {
        // A fresh random id already taken: nothing sensible to do but ask again.
        return Err(ApiError::unavailable().into());
    }
    if let Err(err) = replays.queue.enqueue(&ReplayJob { replay: run.id, part: 0 }).await {
        // The run stays queued and does nothing; a new one can be asked for.
        tracing::error!(replay = %run.id, error = %err, "the replay's job could not be sent");
        return Err(ApiError::unavailable().into());
    }
    tracing::info!(replay = %run.id, staff = %principal, since = %run.since, "erasure replay asked for");
    Ok(json_response(StatusCode::ACCEPTED, &view(&run)))
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// A run as staff see it: where it stands and its receipt (counts only).
fn view(run: &ReplayRun) -> Value {
    let r = &run.receipt;
    json!({
        "run_id": run.id.to_string(),
        "status": run.state.name(),
        "since": run.since,
        "requested_at": run.requested_at,
        "requested_by": run.requested_by,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "tombstones_considered": r.tombstones_considered,
        "sources": r.sources.iter().map(|s| json!({
            "source": s.source, "deleted": s.deleted, "anonymised": s.anonymised,
        })).collect::<Vec<_>>(),
        "requests_scrubbed": r.requests_scrubbed,
        "exports_deleted": r.exports_deleted,
        "ask_by_hand": r.ask_by_hand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_routes_name_a_run_by_its_canonical_id() {
        let id = ReplayRunId::generate();
        let run = id.to_string();
        let split =
            |path: &str| path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        let route_of = |path: &str| {
            let owned = split(path);
            let segments: Vec<&str> = owned.iter().map(String::as_str).collect();
            route(&segments)
        };
        assert_eq!(route_of("/staff/erasures/replays"), Some(Some(ReplayRoute::Start)));
        assert_eq!(
            route_of(&format!("/prod/staff/erasures/replays/{run}")),
            Some(Some(ReplayRoute::Receipt(id)))
        );
        assert_eq!(route_of(&format!("/staff/erasures/replays/{}", run.to_uppercase())), Some(None));
        assert_eq!(route_of(&format!("/staff/erasures/replays/{run}/more")), Some(None));
        assert_eq!(route_of("/staff/requests"), None);
    }
}
