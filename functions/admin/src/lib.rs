//! `admin`: the staff API. Behind IAM authorisation on API Gateway (each call signed with a staff
//! member's AWS credentials); every action is one audited, conditional transition whose notice to
//! the requester the dispatcher sends from the table's stream.
//!
//! | route                                   | what                                         |
//! |-----------------------------------------|----------------------------------------------|
//! | `GET /staff/requests`                   | open requests by status and due date, paged  |
//! | `POST /staff/requests`                  | enter a request taken by phone, post, …      |
//! | `GET /staff/requests/{id}`              | one request with its audit trail             |
//! | `POST /staff/requests/{id}/extend`      | move the due date once, with a reason        |
//! | `POST /staff/requests/{id}/deny`        | refuse, with a reason                        |
//! | `POST /staff/requests/{id}/excessive`   | refuse as excessive, with a cost estimate    |
//! | `POST /staff/requests/{id}/complete`    | a manual request is done, with a note        |
//! | `POST /staff/requests/{id}/receipt-confirmation` | confirm receipt by hand (CCPA §7021(b)) |
//! | `POST /staff/requests/{id}/fee-acceptance` | the person accepted the fee: work restarts |
//! | `POST /staff/requests/{id}/dispute`     | a refused correction disputed: restricted    |
//! | `POST /staff/requests/{id}/restriction-lifting` | announce the lift, before it happens |
//! | `POST /staff/suppressions/check`        | is an address unsubscribed / opted out?      |
//! | `POST /staff/erasures/replays`          | after a restore: re-apply every erasure since |
//! | `GET /staff/erasures/replays/{run}`     | where that replay stands, and its receipt    |
//! | `GET /staff/reports/{year}`             | the year's figures per kind and regime       |
//! | `GET /staff/reports/{year}/records`     | the year's records of requests, as CSV       |
//! | `POST /staff/requests/{id}/sources/{source}/uploads` | where to upload a manual source's files |
//! | `POST /staff/requests/{id}/sources/{source}/access`  | answer its access task with the files   |
//! | `POST /staff/requests/{id}/sources/{source}/erasure` | answer its erasure task with the counts |
//!
//! Locally there is no API Gateway to check signatures, so a configured key (`STAFF_LOCAL_KEY`)
//! stands in; it is refused at start unless the function talks to a loopback AWS endpoint, so a
//! deployed function cannot be configured to accept it.

mod by_hand;
mod replays;
mod report;
mod sources;
mod submit;
mod view;

pub use sources::{
    CONTENT_TYPES, MAX_FILE_BYTES, MAX_FILES, MAX_NAME_CHARS, UPLOAD_LIFETIME, file_name_problem,
};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;

use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::config::{AdminSettings, Env};
use privacy_shared::datamap::BuiltinMap;
use privacy_shared::domain::{
    Actor, BusinessCalendar, Completion, CostEstimate, DenialBasis, EmailAddress, ExtensionError, RequestId,
    RequestRecord, StaffText, StaffTextError, Status, TokenHash, Transition,
};
use privacy_shared::outside::Staging;
use privacy_shared::store::{
    Change, DueIndex, DynamoStore, OpenQuery, PageKey, People, Records, Requests, Secrets, SourceTasks,
    StoreError, SuppressionList,
};
use privacy_shared::{Clock, Config, ConfigError};

pub const LOCAL_KEY_HEADER: &str = "x-staff-key";
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;
/// The open statuses, in the order a list without a status walks them: what staff act on first.
const OPEN: [Status; 3] = [Status::Verified, Status::InProgress, Status::PendingVerification];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Input(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{operation} failed: {code}")]
    S3 { operation: &'static str, code: String },
}

impl AdminError {
    fn into_response(self) -> Response<Body> {
        match self {
            AdminError::Input(err) => err.into_response(),
            AdminError::Store(StoreError::Conflict) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "The request changed while this action was being applied. Reload it and try again.",
            )
            .into_response(),
            AdminError::Store(StoreError::Transition(err)) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", format!("Not possible: {err}."))
                    .into_response()
            }
            AdminError::Store(err) => {
                tracing::error!(error = %err, "request store failed");
                ApiError::unavailable().into_response()
            }
            AdminError::S3 { operation, code } => {
                tracing::error!(operation, code = %code, "export bucket failed");
                ApiError::unavailable().into_response()
            }
        }
    }
}

/// How callers prove they are staff.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// API Gateway verified a SigV4 signature and passes the caller's identity.
    Iam,
    /// The local stack only: IAM identities, or this key in the `x-staff-key` header.
    IamOrLocalKey(TokenHash),
}

impl Authentication {
    /// A local key only where the configuration allows one ([`privacy_shared::config::local_staff_key`]).
    pub fn from_settings(local_key: Option<TokenHash>) -> Authentication {
        match local_key {
            Some(key) => Authentication::IamOrLocalKey(key),
            None => Authentication::Iam,
        }
    }

    /// The staff principal making this call, or a refusal.
    pub fn principal(&self, request: &Request) -> Result<String, ApiError> {
        if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() {
            let iam = context.authorizer.as_ref().and_then(|a| a.iam.as_ref());
            if let Some(arn) = iam.and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone())) {
                return Ok(arn);
            }
        }
        if let Authentication::IamOrLocalKey(expected) = self {
            let presented = request.headers().get(LOCAL_KEY_HEADER).and_then(|v| v.to_str().ok());
            if presented.is_some_and(|key| TokenHash::of_secret(key).matches(expected)) {
                return Ok("local:staff".to_owned());
            }
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Staff calls must be signed with AWS credentials allowed to use the staff API.",
        ))
    }
}

/// The staff API reads and transitions requests (the requester's notice goes out from the
/// stream); it mails only the verification email of a request staff enter, as intake does.
pub struct Admin<S> {
    pub store: S,
    pub clock: Arc<dyn Clock>,
    /// What an extension is checked against.
    pub calendar: BusinessCalendar,
    pub auth: Authentication,
    /// The data map: which sources staff answer by hand (manual ones), with their instructions.
    pub map: BuiltinMap,
    /// Where files staff attach for a manual source are staged; without it (the in-memory
    /// stack) attaching files is refused as unavailable.
    pub staging: Option<Staging>,
    /// Replays of the erasures after a restore; without them (the in-memory stack) the replay
    /// routes answer as unavailable.
    pub replays: Option<replays::Replays>,
    /// How a request staff enter is mailed; without it (the in-memory stack) entering one is
    /// refused as unavailable.
    pub mail: Option<submit::StaffMail>,
}

impl<S> Admin<S> {
    /// With the whole checked-in data map and nowhere to stage files.
    pub fn new(store: S, clock: Arc<dyn Clock>, config: &Config, auth: Authentication) -> Self {
        Admin {
            store,
            clock,
            calendar: config.calendar.clone(),
            auth,
            map: BuiltinMap::with_name_prefix(""),
            staging: None,
            replays: None,
            mail: None,
        }
    }
}

impl Admin<DynamoStore> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = AdminSettings::load(&Env::process())?;
        let sdk = privacy_shared::deps::sdk_from_env().await;
        Ok(Admin::with_sdk(&sdk, settings, Arc::new(privacy_shared::SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: AdminSettings, clock: Arc<dyn Clock>) -> Self {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.core.table_name.clone());
        let staging = Staging {
            s3: privacy_shared::deps::s3_client(sdk, settings.s3_path_style),
            bucket: settings.export_bucket,
            kms_key_id: settings.export_kms_key_id,
        };
        let replays = settings.replays.as_ref().map(|r| replays::Replays::new(sdk, r));
        let admin =
            Admin::new(store, clock, &settings.core, Authentication::from_settings(settings.local_key));
        let mail = submit::StaffMail::new(sdk, settings.core);
        Admin { map: settings.data_map, staging: Some(staging), mail: Some(mail), replays, ..admin }
    }
}

/// What the staff API touches: requests, the due-date index, the suppression lists, and the
/// tasks of the sources outside AWS; and the verification links of the requests staff enter.
pub trait StaffStore: Requests + DueIndex + People + SourceTasks + Secrets + Records {}

impl<T: Requests + DueIndex + People + SourceTasks + Secrets + Records> StaffStore for T {}

/// Which route a path names. The id is parsed here: anything but a canonical id is a 404.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    SuppressionCheck,
    List,
    Show(RequestId),
    Act(RequestId, Action),
    /// What staff send or set off by hand: a confirmation of receipt, an accepted fee, a dispute.
    ByHand(RequestId, by_hand::ByHand),
    Source(RequestId, String, sources::SourceAction),
    Replay(replays::ReplayRoute),
    Report(report::Report),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Extend,
    Deny,
    Excessive,
    Complete,
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if segments.ends_with(&["staff", "suppressions", "check"]) {
        return Some(Route::SuppressionCheck);
    }
    if let Some(replay) = replays::route(&segments) {
        return replay.map(Route::Replay);
    }
    if let Some(report) = report::Report::route(&segments) {
        return Some(Route::Report(report));
    }
    let at =
        segments.iter().rposition(|s| *s == "requests").filter(|i| *i > 0 && segments[i - 1] == "staff")?;
    let id = |raw: &str| RequestId::parse(raw).ok();
    match &segments[at + 1..] {
        [] => Some(Route::List),
        [raw] => id(raw).map(Route::Show),
        [raw, action] => {
            if let Some(by_hand) = by_hand::ByHand::parse(action) {
                return id(raw).map(|id| Route::ByHand(id, by_hand));
            }
            let action = match *action {
                "extend" => Action::Extend,
                "deny" => Action::Deny,
                "excessive" => Action::Excessive,
                "complete" => Action::Complete,
                _ => return None,
            };
            id(raw).map(|id| Route::Act(id, action))
        }
        [raw, "sources", source, action] if sources::is_source_id(source) => {
            let action = sources::SourceAction::parse(action)?;
            id(raw).map(|id| Route::Source(id, (*source).to_owned(), action))
        }
        _ => None,
    }
}

pub async fn handle<S: StaffStore>(admin: &Admin<S>, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(match serve(admin, &request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    })
}

async fn serve<S: StaffStore>(admin: &Admin<S>, request: &Request) -> Result<Response<Body>, AdminError> {
    // Who is asking comes first: an unauthenticated caller learns nothing, not even a 404.
    let principal = admin.auth.principal(request)?;
    let route = route(request.uri().path()).ok_or_else(ApiError::not_found)?;
    let method = request.method();
    match (route, method) {
        (Route::SuppressionCheck, &Method::POST) => suppression_check(admin, request).await,
        (Route::Replay(replay), _) => replays::serve(admin, request, replay, principal).await,
        (Route::List, &Method::GET) => list(admin, request).await,
        (Route::List, &Method::POST) => submit::serve(admin, request, principal).await,
        (Route::Show(id), &Method::GET) => show(admin, id).await,
        (Route::Report(which), &Method::GET) => report::serve(admin, &which).await,
        (Route::Act(id, action), &Method::POST) => act(admin, request, id, action, principal).await,
        (Route::ByHand(id, action), &Method::POST) => {
            by_hand::serve(admin, request, id, action, principal).await
        }
        (Route::Source(id, source, action), &Method::POST) => {
            sources::serve(admin, request, id, &source, action, principal).await
        }
        _ => Err(ApiError::method_not_allowed().into()),
    }
}

fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// The cursor is the status and sort key where the page ended, base64url: opaque to callers, and
/// checked on the way back in.
fn encode_cursor(key: &PageKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", key.status, key.sort_key))
}

fn decode_cursor(raw: &str) -> Result<(Status, Option<PageKey>), ApiError> {
    let bad = || invalid_query("`cursor` is not one this API handed out.");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (status, sort_key) = text.split_once('|').ok_or_else(bad)?;
    let status = OPEN.into_iter().find(|s| s.as_str() == status).ok_or_else(bad)?;
    if sort_key.is_empty() {
        return Ok((status, None));
    }
    let well_formed = sort_key.len() <= 80
        && sort_key.rsplit_once('#').is_some_and(|(_, id)| RequestId::parse(id).is_ok())
        && sort_key.chars().all(|c| c.is_ascii_alphanumeric() || "#-:TZ".contains(c));
    if !well_formed {
        return Err(bad());
    }
    Ok((status, Some(PageKey { status, sort_key: sort_key.to_owned() })))
}

async fn list<S: StaffStore>(admin: &Admin<S>, request: &Request) -> Result<Response<Body>, AdminError> {
    let params = request.query_string_parameters_ref().cloned().unwrap_or_default();
    let mut status = None;
    let mut due_before = None;
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (name, value) in params.iter() {
        match name {
            "status" => {
                status = Some(OPEN.into_iter().find(|s| s.as_str() == value).ok_or_else(|| {
                    invalid_query("`status` must be one of pending_verification, verified, in_progress.")
                })?)
            }
            "due_before" => {
                due_before = Some(
                    NaiveDate::parse_from_str(value, "%Y-%m-%d")
                        .map_err(|_| invalid_query("`due_before` must be a date like 2026-12-31."))?,
                )
            }
            "limit" => {
                limit =
                    value.parse::<u32>().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                        invalid_query(format!("`limit` must be a number from 1 to {MAX_PAGE}."))
                    })?
            }
            "cursor" => cursor = Some(decode_cursor(value)?),
            _ => {
                return Err(invalid_query(
                    "Unknown query parameter; allowed are status, due_before, limit, cursor.",
                )
                .into());
            }
        }
    }
    // Where to start: the cursor's status and position, else the asked status, else the first.
    let statuses: Vec<Status> = match status {
        Some(s) => vec![s],
        None => OPEN.to_vec(),
    };
    let (start_status, after) = match cursor {
        Some((s, after)) if statuses.contains(&s) => (s, after),
        Some(_) => return Err(invalid_query("`cursor` belongs to another status.").into()),
        None => (statuses[0], None),
    };
    // A page fills from one status after the other; the cursor says where it stopped.
    let mut position = statuses.iter().position(|s| *s == start_status).unwrap_or(0);
    let mut after = after;
    let mut requests = Vec::new();
    let next = loop {
        let current = statuses[position];
        // Pending requests are indexed by receipt, so a due-date bound is applied to what is read.
        let until = due_before
            .filter(|_| current != Status::PendingVerification)
            .map(privacy_shared::store::Bound::DueBy);
        let room = limit - requests.len() as u32;
        let page =
            admin.store.open_requests(&OpenQuery { status: current, until, limit: room, after }).await?;
        requests.extend(
            page.requests.iter().filter(|r| due_before.is_none_or(|d| r.due_on <= d)).map(view::summary),
        );
        if let Some(key) = page.next {
            break Some(encode_cursor(&key));
        }
        position += 1;
        let Some(following) = statuses.get(position) else { break None };
        if requests.len() as u32 >= limit {
            break Some(URL_SAFE_NO_PAD.encode(format!("{following}|")));
        }
        after = None;
    };
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "requests": requests, "next_cursor": next })))
}

async fn show<S: StaffStore>(admin: &Admin<S>, id: RequestId) -> Result<Response<Body>, AdminError> {
    let record = admin.store.get(id).await?.ok_or_else(ApiError::not_found)?;
    let audit: Vec<_> = admin.store.audit_trail(id).await?.iter().map(view::audit).collect();
    let mut tasks = admin.store.tasks(id).await?;
    tasks.sort_by(|a, b| (a.operation, &a.source).cmp(&(b.operation, &b.source)));
    // The map only names a task's source and says what staff do for a manual one: a map that
    // does not read still shows the request.
    let map = admin.map.get().ok();
    let today = admin.calendar.local_date(admin.clock.now());
    let tasks: Vec<_> =
        tasks.iter().map(|t| view::task(t, map.and_then(|m| m.source(&t.source)), today)).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "request": view::full(&record, today), "audit": audit, "tasks": tasks }),
    ))
}

#[derive(Deserialize)]
struct CheckBody {
    email: String,
}

/// Whether an address is on each suppression list. The address travels in the body (never in a
/// URL that a log could keep) and is not echoed back.
async fn suppression_check<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
) -> Result<Response<Body>, AdminError> {
    let body: CheckBody = read_json(request, &["email"])?;
    let email = EmailAddress::parse(&body.email)
        .map_err(|_| ApiError::invalid_field("email", "is not a valid email address."))?;
    let lists = admin.store.suppressions(&email.subject_key()).await?;
    let on = |list: SuppressionList| lists.iter().find(|s| s.list == list).map(|s| s.since);
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "marketing": { "suppressed": on(SuppressionList::Marketing).is_some(), "since": on(SuppressionList::Marketing) },
            "sale": { "suppressed": on(SuppressionList::Sale).is_some(), "since": on(SuppressionList::Sale) },
        }),
    ))
}

#[derive(Deserialize)]
struct ExtendBody {
    until: NaiveDate,
    reason: String,
}

/// A denial: the reason goes to the requester, the coded basis (`other` when not given) to the
/// records of requests.
#[derive(Deserialize)]
struct DenyBody {
    reason: String,
    basis: Option<String>,
}

fn denial_basis(name: Option<&str>) -> Result<DenialBasis, ApiError> {
    let Some(name) = name else { return Ok(DenialBasis::Other) };
    DenialBasis::parse(name).ok_or_else(|| {
        let codes: Vec<&str> = DenialBasis::ALL.iter().map(|b| b.as_str()).collect();
        ApiError::invalid_field("basis", &format!("must be one of {}.", codes.join(", ")))
    })
}

#[derive(Deserialize)]
struct EstimateBody {
    amount: String,
    currency: String,
}

#[derive(Deserialize)]
struct ExcessiveBody {
    reason: String,
    cost_estimate: EstimateBody,
}

#[derive(Deserialize)]
struct CompleteBody {
    note: Option<String>,
}

pub(crate) fn staff_text(field: &str, raw: &str, required: bool) -> Result<StaffText, ApiError> {
    StaffText::parse(raw).map_err(|err| match err {
        StaffTextError::Blank if required => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            format!("`{field}` is required: the requester is told it."),
        ),
        other => ApiError::invalid_field(field, &other.to_string()),
    })
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn extension_error(err: ExtensionError) -> ApiError {
    let message = format!("{}{}", capitalise(&err.to_string()), ".");
    match err {
        ExtensionError::NotActive => ApiError::new(StatusCode::CONFLICT, "invalid_state", message),
        ExtensionError::AlreadyExtended => unprocessable("already_extended", message),
        ExtensionError::TooLate { .. } => unprocessable("extension_too_late", message),
        ExtensionError::NotLater { .. } => unprocessable("extension_not_later", message),
        ExtensionError::TooLong { .. } => unprocessable("extension_too_long", message),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

async fn act<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    action: Action,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    // The body is checked before anything is read: bad input is refused the same for every id.
    let transition = match action {
        Action::Extend => {
            let body: ExtendBody = read_json(request, &["until", "reason"])?;
            Transition::Extend { until: body.until, reason: staff_text("reason", &body.reason, true)? }
        }
        Action::Deny => {
            let body: DenyBody = read_json(request, &["reason", "basis"])?;
            let reason = staff_text("reason", &body.reason, true)?;
            Transition::Deny { reason, basis: denial_basis(body.basis.as_deref())? }
        }
        Action::Excessive => {
            let body: ExcessiveBody = read_json(request, &["reason", "cost_estimate"])?;
            let reason = staff_text("reason", &body.reason, true)?;
            let estimate = CostEstimate::parse(&body.cost_estimate.amount, &body.cost_estimate.currency)
                .map_err(|err| ApiError::invalid_field("cost_estimate", &err.to_string()))?;
            Transition::RejectExcessive { reason, estimate }
        }
        Action::Complete => {
            let body: CompleteBody = read_json(request, &["note"])?;
            let note = match body.note.filter(|n| !n.trim().is_empty()) {
                Some(note) => Some(staff_text("note", &note, false)?),
                None => None,
            };
            Transition::Complete(Completion::ByStaff { note })
        }
    };
    let record = admin.store.get(id).await?.ok_or_else(ApiError::not_found)?;
    check(admin, &record, &transition)?;
    let change = Change::new(transition, admin.clock.now(), Actor::Staff(principal.clone()));
    let updated = admin.store.transition(&record, change).await?;
    tracing::info!(request_id = %id, action = ?action, staff = %principal, version = updated.version, "staff action");
    let today = admin.calendar.local_date(admin.clock.now());
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "request": view::full(&updated, today) })))
}

/// The rules beyond the state machine, with errors that say which one.
fn check<S: StaffStore>(
    admin: &Admin<S>,
    record: &RequestRecord,
    transition: &Transition,
) -> Result<(), ApiError> {
    let calendar = &admin.calendar;
    match transition {
        Transition::Extend { until, .. } => {
            let today = calendar.local_date(admin.clock.now());
            calendar.check_extension(record, today, *until).map_err(extension_error)
        }
        // The domain refuses it too; this says why.
        Transition::Complete(Completion::ByStaff { .. }) if record.fulfilled_automatically() => {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "automatic_fulfilment",
                "The system fulfils this request (the export, the erasure or the self-service \
                 correction) and completes it itself; it cannot be completed by hand.",
            ))
        }
        _ => match record.status.apply(transition.event()) {
            Ok(_) => Ok(()),
            Err(err) => {
                Err(ApiError::new(StatusCode::CONFLICT, "invalid_state", format!("Not possible: {err}.")))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_the_request_and_the_action() {
        let id = RequestId::generate();
        assert_eq!(route("/staff/requests"), Some(Route::List));
        assert_eq!(route("/staff/requests/"), Some(Route::List));
        assert_eq!(route(&format!("/staff/requests/{id}")), Some(Route::Show(id)));
        assert_eq!(route(&format!("/prod/staff/requests/{id}/extend")), Some(Route::Act(id, Action::Extend)));
        assert_eq!(
            route(&format!("/staff/requests/{id}/excessive")),
            Some(Route::Act(id, Action::Excessive))
        );
        assert_eq!(
            route(&format!("/staff/requests/{id}/sources/website_analytics/uploads")),
            Some(Route::Source(id, "website_analytics".into(), sources::SourceAction::Uploads))
        );
        assert_eq!(
            route(&format!("/prod/staff/requests/{id}/sources/crm/erasure")),
            Some(Route::Source(id, "crm".into(), sources::SourceAction::Erasure))
        );
        for bad in [
            "/requests".to_owned(),
            format!("/staff/requests/{id}/sources/website_analytics"),
            format!("/staff/requests/{id}/sources/website_analytics/delete"),
            format!("/staff/requests/{id}/sources/Website/access"),
            format!("/staff/requests/{id}/sources/../access"),
            format!("/staff/requests/{id}/delete"),
            format!("/staff/requests/{}/deny", id.to_string().to_uppercase()),
            "/staff/requests/../x".to_owned(),
            format!("/staff/requests/{id}/deny/more"),
        ] {
            assert_eq!(route(&bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        let key =
            PageKey { status: Status::Verified, sort_key: format!("2026-12-28#{}", RequestId::generate()) };
        assert_eq!(decode_cursor(&encode_cursor(&key)).unwrap(), (Status::Verified, Some(key)));
        for forged in [
            "not base64!".to_owned(),
            URL_SAFE_NO_PAD.encode("completed|2026-12-28#x"),
            URL_SAFE_NO_PAD.encode("verified|2026-12-28#not-an-id"),
            URL_SAFE_NO_PAD.encode("verified"),
        ] {
            assert_eq!(decode_cursor(&forged).unwrap_err().code, "invalid_query", "{forged}");
        }
    }
}
