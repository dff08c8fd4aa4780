//! Tombstones and the replay of the erasures after a restore (CCPA regulations §7022(d); the
//! model is in [`privacy_shared::tombstones`]).
//!
//! Every erasure writes its tombstone just before its request completes ([`remember`]): keyed
//! hashes of the address and the user id it found, the ids of the requests it scrubbed, and when.
//!
//! A replay, asked for by staff after a restore (`staff replay-erasures --since DATE`), applies
//! every tombstone written from `since` until it was asked for: it scans each AWS source of the
//! data map a page at a time, applies the source's own erasure rule (delete, or anonymise) to
//! the records the tombstones match, and scrubs the tombstones' requests and deletes their
//! exports again. Like an erasure it saves its progress after every page (counts and where the
//! next page starts) in its run item, stops before the invocation's deadline and continues in a
//! fresh one through the erasure queue, and counts nothing twice. It is idempotent: what it
//! erased no longer matches, so a second run finds nothing. Its receipt is the run item, which
//! the staff API reads (`GET /staff/erasures/replays/{run}`).

use futures_util::stream::{self, StreamExt as _};

use privacy_shared::config::TombstoneSettings;
use privacy_shared::datamap::{ErasurePolicy, Location, Source};
use privacy_shared::domain::{RequestId, RequestRecord};
use privacy_shared::jobs::{JobQueue, ReplayJob};
use privacy_shared::sources::{PersonalData, SourceError, Written, delete_all_versions};
use privacy_shared::store::{People, StoreError, TokenSlot};
use privacy_shared::tombstones::{
    DynamoTombstones, Matcher, ReplayAt, ReplayRun, ReplayRunId, ReplayState, ScanPosition, SourceScanner,
    Tombstone, TombstoneKey, TombstoneRetention, Verdict,
};

use crate::{Budget, Eraser, ErasureError, ErasureStore, PAGE_RECORDS, Ran, WRITES_IN_FLIGHT, erase_record};

/// How many requests the replay scrubs between two saves of its progress.
const REQUESTS_PER_STEP: usize = 25;

/// Where tombstones are kept, what identifiers are hashed with, how long tombstones last, and
/// the whole-source reads of a replay.
pub struct Tombstoning {
    pub book: DynamoTombstones,
    pub key: TombstoneKey,
    pub retention: TombstoneRetention,
    pub scanner: SourceScanner,
}

impl Tombstoning {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        settings: &TombstoneSettings,
        s3: aws_sdk_s3::Client,
    ) -> Tombstoning {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Tombstoning {
            book: DynamoTombstones::new(dynamo.clone(), settings.table.clone()),
            key: settings.key.clone(),
            retention: settings.retention,
            scanner: SourceScanner::new(dynamo, s3, PAGE_RECORDS),
        }
    }
}

/// Writes the tombstone of `request`'s erasure (the first write stands): the person's address
/// and user id hashed, the requests the erasure scrubbed (the person's history and itself).
pub(crate) async fn remember<S: People>(
    tombstoning: &Tombstoning,
    store: &S,
    request: &RequestRecord,
    user_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let history: Vec<RequestId> =
        store.history(&request.email.subject_key()).await?.into_iter().map(|past| past.id).collect();
    let tombstone = Tombstone::of(
        &tombstoning.key,
        request.id,
        &request.email,
        user_id,
        &history,
        now,
        tombstoning.retention,
    );
    tombstoning.book.put_tombstone(&tombstone).await
}

/// Runs one part of a replay until it is done or the budget is spent; then sends the next part
/// to the erasure queue, as an erasure's [`crate::run_part`] does.
pub async fn run_replay_part<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    job: &ReplayJob,
    budget: Budget,
) -> Result<Ran, ErasureError> {
    let ran = replay(eraser, job.replay, budget).await?;
    if ran == Ran::OutOfTime {
        let Some(continuation) = &eraser.continuation else { return Err(ErasureError::OutOfTime) };
        let next = job.next();
        continuation.queue.enqueue(&next).await?;
        tracing::info!(replay = %job.replay, part = next.part, "out of time: the replay goes on in a fresh invocation");
    }
    Ok(ran)
}

/// Runs the replay `id` from where its run item stands until it is done or the budget is spent.
pub async fn replay<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    id: ReplayRunId,
    mut budget: Budget,
) -> Result<Ran, ErasureError> {
    let tombstoning = eraser.tombstones.as_ref().ok_or(ErasureError::NoTombstones)?;
    let book = &tombstoning.book;
    let Some(mut run) = book.replay(id).await? else {
        // Written by the staff API before it sends the job: a stray message, nothing to do.
        tracing::warn!(replay = %id, "no such replay run");
        return Ok(Ran::Finished);
    };
    let mut at = match &run.state {
        ReplayState::Finished => return Ok(Ran::Finished),
        ReplayState::Running(at) => at.clone(),
        ReplayState::Queued => {
            run.receipt.started_at = Some(eraser.clock.now());
            run.receipt.ask_by_hand =
                eraser.map.sources().iter().filter(|s| s.is_external()).map(|s| s.id.clone()).collect();
            ReplayAt::Sources { pending: aws_sources(eraser), next: None }
        }
    };
    // The same set on every invocation: what was erased from `since` until staff asked.
    let tombstones = book.tombstones_between(run.since, run.requested_at).await?;
    run.receipt.tombstones_considered = u32::try_from(tombstones.len()).unwrap_or(u32::MAX);
    let mut matcher = Matcher::new(&tombstoning.key, &tombstones, &run.learned_user_ids);
    run.state = ReplayState::Running(at.clone());
    book.save_replay(&run).await?;

    loop {
        if budget.spent() {
            return Ok(Ran::OutOfTime);
        }
        match at {
            ReplayAt::Sources { mut pending, next } => {
                let Some(source_id) = pending.first().cloned() else {
                    at = ReplayAt::Requests { after: None };
                    continue;
                };
                let Some(source) = eraser.map.source(&source_id) else {
                    // No longer in the data map (a new version deployed meanwhile).
                    pending.remove(0);
                    at = ReplayAt::Sources { pending, next: None };
                    continue;
                };
                let step = replay_step(eraser, tombstoning, &mut matcher, &mut run, source, next).await;
                let (next, failed) = match step {
                    Ok(next) => (next, None),
                    Err((position, err)) => (position, Some(err)),
                };
                if failed.is_none() && next.is_none() {
                    pending.remove(0);
                    tracing::info!(replay = %id, source = %source.id, "source replayed");
                }
                at = ReplayAt::Sources { pending, next };
                // The page's counts, the user ids it learned and where the next page starts, in
                // one write.
                run.state = ReplayState::Running(at.clone());
                book.save_replay(&run).await?;
                if let Some(err) = failed {
                    return Err(err);
                }
            }
            ReplayAt::Requests { after } => {
                let mut ids: Vec<RequestId> =
                    tombstones.iter().flat_map(|t| t.requests.iter().copied()).collect();
                ids.sort_by_key(RequestId::to_string);
                ids.dedup();
                let after = after.map(|a| a.to_string());
                let todo: Vec<RequestId> = ids
                    .into_iter()
                    .filter(|id| after.as_ref().is_none_or(|a| id.to_string() > *a))
                    .take(REQUESTS_PER_STEP)
                    .collect();
                let Some(last) = todo.last().copied() else {
                    run.state = ReplayState::Finished;
                    run.receipt.finished_at = Some(eraser.clock.now());
                    book.save_replay(&run).await?;
                    tracing::info!(replay = %id, tombstones = tombstones.len(), "replay finished");
                    return Ok(Ran::Finished);
                };
                for request in todo {
                    rescrub(eraser, &mut run, request).await?;
                }
                at = ReplayAt::Requests { after: Some(last) };
                run.state = ReplayState::Running(at.clone());
                book.save_replay(&run).await?;
            }
        }
        budget.step();
    }
}

/// The AWS sources of the map, those that give user ids first: an account the replay erases may
/// teach it a user id (see [`Verdict::Erase`]) the sources keyed by user id are then read with.
fn aws_sources<S, P>(eraser: &Eraser<S, P>) -> Vec<String> {
    let aws: Vec<&Source> = eraser.map.sources().iter().filter(|s| !s.is_external()).collect();
    let (first, rest): (Vec<&Source>, Vec<&Source>) =
        aws.into_iter().partition(|s| s.provides_user_id.is_some());
    first.into_iter().chain(rest).map(|s| s.id.clone()).collect()
}

/// One page of one source: every record or object the tombstones match erased by the source's
/// rule, counted in the run. Where the source's next page starts (None: the source is done), or,
/// when a write failed, the position to retry from (this page) with the error; what the page's
/// other writes did is counted either way.
async fn replay_step<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    tombstoning: &Tombstoning,
    matcher: &mut Matcher<'_>,
    run: &mut ReplayRun,
    source: &Source,
    position: Option<ScanPosition>,
) -> Result<Option<ScanPosition>, (Option<ScanPosition>, ErasureError)> {
    let retry = position.clone();
    let fail = |err: ErasureError| (retry.clone(), err);
    match &source.location {
        Location::Table { .. } => {
            let cursor = match position {
                Some(ScanPosition::Table(cursor)) => Some(cursor),
                _ => None,
            };
            let page = tombstoning.scanner.records(source, cursor).await.map_err(|e| fail(e.into()))?;
            let mut matched = Vec::new();
            for record in &page.records {
                if let Verdict::Erase { learned } = matcher.record(source, record) {
                    if let Some(user_id) = learned.filter(|u| !run.learned_user_ids.contains(u)) {
                        matcher.learn(user_id.clone());
                        run.learned_user_ids.push(user_id);
                    }
                    matched.push(record);
                }
            }
            let writes: Vec<_> = matched
                .into_iter()
                .map(|record| erase_record(&eraser.data, source, &source.erasure, record))
                .collect();
            let writes: Vec<Result<Written, SourceError>> =
                stream::iter(writes).buffer_unordered(WRITES_IN_FLIGHT).collect().await;
            let counts = run.source_mut(&source.id);
            let mut failed = None;
            for written in writes {
                match (written, &source.erasure) {
                    (Ok(Written::Applied), ErasurePolicy::Delete) => counts.deleted += 1,
                    (Ok(Written::Applied), ErasurePolicy::Anonymise { .. }) => counts.anonymised += 1,
                    (Ok(Written::NotTheirs), _) => {}
                    (Err(err), _) => failed = Some(err),
                }
            }
            match failed {
                Some(err) => Err(fail(err.into())),
                None => Ok(page.next.map(ScanPosition::Table)),
            }
        }
        Location::Objects { .. } => {
            let after = match position {
                Some(ScanPosition::Objects(after)) => Some(after),
                _ => None,
            };
            let page = tombstoning.scanner.objects(source, after).await.map_err(|e| fail(e.into()))?;
            run.source_mut(&source.id);
            for (person, key) in &page.objects {
                if !matcher.object(source, person) {
                    continue;
                }
                eraser.data.delete_object(source, person, key).await.map_err(|e| fail(e.into()))?;
                run.source_mut(&source.id).deleted += 1;
            }
            Ok(page.next.map(ScanPosition::Objects))
        }
        // Their owners replay their own restores; the receipt names them.
        Location::Webhook { .. } | Location::Manual { .. } => Ok(None),
    }
}

/// A request of an erased person, as a restore may have brought it back: its name, free text,
/// secrets and progress removed again (counted when it held any), its exports deleted again.
async fn rescrub<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    run: &mut ReplayRun,
    id: RequestId,
) -> Result<(), ErasureError> {
    let store = &eraser.store;
    if let Some(record) = store.get(id).await? {
        let text = record.name.is_some()
            || record.details.is_some()
            || record.corrections.is_some()
            || record.recipient.is_some();
        let mut holds = text;
        for slot in [TokenSlot::Requester, TokenSlot::Recipient] {
            holds |= store.secret(id, slot).await?.is_some();
        }
        holds |= !store.download_tokens(id).await?.is_empty();
        holds |= store.erasure_progress(id).await?.is_some();
        if holds {
            store.scrub_request(id).await?;
            run.receipt.requests_scrubbed += 1;
        }
    }
    let prefix = format!("exports/{id}/");
    if delete_all_versions(&eraser.s3, &eraser.export_bucket, &prefix).await? > 0 {
        run.receipt.exports_deleted += 1;
    }
    Ok(())
}
