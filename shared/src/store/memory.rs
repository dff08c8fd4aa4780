//! The store in memory, behind the same traits: for handler and flow tests that do not test
//! DynamoDB itself. One lock makes every operation atomic, and every condition the DynamoDB
//! implementation writes is checked here the same way (the shared contract tests hold both to it).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Change, Claim, Created, DownloadToken, DueIndex, EffectLedger, ErasureLog, ErasureMark, ErasureProgress,
    LiveToken, MailSuppression, OpenPage, OpenQuery, OpenRequest, PageKey, PastRequest, People, Requests,
    Secrets, SourceTasks, StoreError, Suppression, SuppressionList, TokenSlot, Verification, WrongAttempt,
    budget_window, due_sort_key, page_key_id, submitted_event, upper_sort_key,
};
use crate::budget::BudgetCharge;
use crate::domain::{
    Actor, AuditEvent, Completion, Event, RequestId, RequestKind, RequestRecord, SourceOperation, SourceTask,
    SubjectKey, Transition,
};

mod records;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Claimed { until: i64 },
    Done,
}

#[derive(Default)]
struct State {
    requests: HashMap<RequestId, RequestRecord>,
    /// Per request, by the same sort keys the table uses (a transition's version, then events).
    audit: HashMap<RequestId, BTreeMap<String, AuditEvent>>,
    open: HashMap<(SubjectKey, RequestKind), RequestId>,
    secrets: HashMap<(RequestId, TokenSlot), Verification>,
    downloads: HashMap<(RequestId, TokenSlot), DownloadToken>,
    effects: HashMap<(RequestId, String), Effect>,
    history: HashMap<SubjectKey, Vec<PastRequest>>,
    suppressions: HashMap<(SubjectKey, SuppressionList), Suppression>,
    mail_suppressions: HashMap<SubjectKey, MailSuppression>,
    budgets: HashMap<(String, i64), u32>,
    erasures: HashMap<RequestId, ErasureProgress>,
    erasure_marks: HashMap<SubjectKey, ErasureMark>,
    /// Source tasks, and whether each is still on the sweep's list.
    tasks: HashMap<(RequestId, SourceOperation, String), (SourceTask, bool)>,
    /// The records of requests, by year of receipt and sort key (`records`).
    records: BTreeMap<records::RecordKey, crate::domain::ComplianceRecord>,
    /// Waits for a recipient's confirmation: when each lapses.
    recipient_waits: HashMap<RequestId, DateTime<Utc>>,
}

/// Clones share one store, as every function of a stack shares one table.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Nothing stored at all.
    pub fn is_empty(&self) -> bool {
        let state = self.state();
        state.requests.is_empty()
            && state.secrets.is_empty()
            && state.downloads.is_empty()
            && state.effects.is_empty()
            && state.suppressions.is_empty()
            && state.mail_suppressions.is_empty()
            && state.budgets.is_empty()
            && state.erasures.is_empty()
            && state.erasure_marks.is_empty()
            && state.tasks.is_empty()
            && state.records.is_empty()
            && state.recipient_waits.is_empty()
    }

    /// Everything stored, as text in a stable order (hashes in full): for tests that check that
    /// nothing changed.
    pub fn fingerprint(&self) -> String {
        let state = self.state();
        let mut lines: Vec<String> = Vec::new();
        for (id, request) in &state.requests {
            lines.push(format!("request {id} {}", serde_json::to_string(request).unwrap_or_default()));
        }
        for (id, events) in &state.audit {
            for (sk, event) in events {
                lines.push(format!("audit {id} {sk} {}", serde_json::to_string(event).unwrap_or_default()));
            }
        }
        for ((subject, kind), id) in &state.open {
            lines.push(format!("open {} {kind} {id}", subject.as_str()));
        }
        for ((id, slot), v) in &state.secrets {
            let tokens: Vec<String> =
                v.tokens.iter().map(|t| format!("{}@{}", t.token_hash.to_hex(), t.expires_at)).collect();
            lines.push(format!("secret {id} {slot:?} {tokens:?} {} {:?}", v.wrong_attempts, v.locked_at));
        }
        for ((id, slot), t) in &state.downloads {
            lines.push(format!("download {id} {slot:?} {} {}", t.token_hash.to_hex(), t.expires_at));
        }
        for ((id, key), effect) in &state.effects {
            lines.push(format!("effect {id} {key} {effect:?}"));
        }
        for (subject, history) in &state.history {
            lines.push(format!("history {} {history:?}", subject.as_str()));
        }
        for ((subject, list), s) in &state.suppressions {
            lines.push(format!("suppression {} {list:?} {s:?}", subject.as_str()));
        }
        for (subject, s) in &state.mail_suppressions {
            lines.push(format!("mail_suppression {} {s:?}", subject.as_str()));
        }
        for ((key, window), sent) in &state.budgets {
            lines.push(format!("budget {key} {window} {sent}"));
        }
        for (id, progress) in &state.erasures {
            lines.push(format!("erasure {id} {:?} {:?}", progress.sources, progress.exports_deleted));
        }
        for (subject, mark) in &state.erasure_marks {
            lines.push(format!("erasure_mark {} {mark:?}", subject.as_str()));
        }
        for (id, lapses_at) in &state.recipient_waits {
            lines.push(format!("recipient_wait {id} {lapses_at}"));
        }
        for ((year, sk), record) in &state.records {
            lines.push(format!("record {year} {sk} {record:?}"));
        }
        lines.sort();
        lines.join("\n")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; the data is still whole.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn audit_sk(version: u32) -> String {
    format!("AUDIT#{version:06}")
}

fn to_map(record: &RequestRecord) -> Result<serde_json::Map<String, Value>, StoreError> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(StoreError::Corrupt("request".into())),
    }
}

/// Writes onto `stored` exactly what differs between `current` and `updated`, as the DynamoDB
/// update does: fields other writers own keep their stored values.
fn merge(
    stored: &RequestRecord,
    current: &RequestRecord,
    updated: &RequestRecord,
) -> Result<RequestRecord, StoreError> {
    let (before, after) = (to_map(current)?, to_map(updated)?);
    let mut merged = to_map(stored)?;
    for (name, value) in &after {
        if before.get(name) != Some(value) {
            merged.insert(name.clone(), value.clone());
        }
    }
    for name in before.keys().filter(|name| !after.contains_key(*name)) {
        merged.remove(name);
    }
    serde_json::from_value(Value::Object(merged)).map_err(|_| StoreError::Corrupt("request".into()))
}

impl Requests for MemoryStore {
    async fn create(&self, request: &RequestRecord, token: &LiveToken) -> Result<Created, StoreError> {
        let mut state = self.state();
        let marker = (request.email.subject_key(), request.kind);
        if let Some(existing) = state.open.get(&marker) {
            return Ok(Created::AlreadyOpen(*existing));
        }
        if state.requests.contains_key(&request.id) {
            return Err(StoreError::Conflict);
        }
        state.requests.insert(request.id, request.clone());
        let event = submitted_event(request, None);
        state.audit.entry(request.id).or_default().insert(audit_sk(event.version), event);
        state.open.insert(marker, request.id);
        state.secrets.insert((request.id, TokenSlot::Requester), Verification::new(token.clone()));
        Ok(Created::New)
    }

    async fn create_opt_out(&self, request: &RequestRecord, list: SuppressionList) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.requests.contains_key(&request.id) {
            return Err(StoreError::Conflict);
        }
        state.requests.insert(request.id, request.clone());
        let event = submitted_event(request, Some("no_verification_required"));
        state.audit.entry(request.id).or_default().insert(audit_sk(event.version), event);
        let suppression = Suppression { list, since: request.received_at, request_id: request.id };
        state.suppressions.entry((request.email.subject_key(), list)).or_insert(suppression);
        Ok(())
    }

    async fn get(&self, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
        Ok(self.state().requests.get(&id).cloned())
    }

    async fn open_request(
        &self,
        subject: &SubjectKey,
        kind: RequestKind,
    ) -> Result<Option<RequestId>, StoreError> {
        Ok(self.state().open.get(&(subject.clone(), kind)).copied())
    }

    async fn transition(&self, current: &RequestRecord, change: Change) -> Result<RequestRecord, StoreError> {
        let updated = current.apply(&change.transition, change.at)?;
        let mut state = self.state();
        let stored = state.requests.get(&current.id).ok_or(StoreError::Conflict)?;
        if stored.status != current.status || stored.version != current.version {
            return Err(StoreError::Conflict);
        }
        let consumes = match &change.transition {
            Transition::Verify { token } => Some((TokenSlot::Requester, token)),
            Transition::ConfirmRecipient { token } => Some((TokenSlot::Recipient, token)),
            _ => None,
        };
        if let Some((slot, token)) = consumes {
            let held = state
                .secrets
                .get(&(current.id, slot))
                .is_some_and(|s| s.tokens.iter().any(|t| &t.token_hash == token));
            if !held {
                return Err(StoreError::Conflict);
            }
        }
        if matches!(change.transition, Transition::Extend { .. }) && stored.original_due_on.is_some() {
            return Err(StoreError::Conflict);
        }
        if matches!(
            change.transition,
            Transition::Complete(Completion::Exported { .. } | Completion::ExportedInParts { .. })
        ) {
            let mark = state.erasure_marks.get(&current.email.subject_key());
            if mark.is_some_and(|m| m.overtakes(super::export_asked_at(current))) {
                return Err(StoreError::Conflict);
            }
        }
        let merged = merge(stored, current, &updated)?;
        if let Some((slot, _)) = consumes {
            state.secrets.remove(&(current.id, slot));
        }
        match change.transition {
            Transition::ConfirmRecipient { .. } => {
                state.recipient_waits.remove(&current.id);
            }
            Transition::LapseRecipient => {
                state.secrets.remove(&(current.id, TokenSlot::Recipient));
                state.recipient_waits.remove(&current.id);
            }
            _ => {}
        }
        if matches!(change.transition, Transition::Verify { .. }) {
            let past = PastRequest { id: current.id, kind: current.kind, received_at: current.received_at };
            let history = state.history.entry(current.email.subject_key()).or_default();
            history.push(past);
            history.sort_by_key(|p| (p.received_at, p.id.to_string()));
        }
        if !updated.status.is_open() {
            state.secrets.remove(&(current.id, TokenSlot::Requester));
            let marker = (current.email.subject_key(), current.kind);
            if state.open.get(&marker) == Some(&current.id) {
                state.open.remove(&marker);
            }
        }
        let event = change.audit_event(current, updated.status);
        state.audit.entry(current.id).or_default().insert(audit_sk(event.version), event);
        state.requests.insert(current.id, merged);
        Ok(updated)
    }

    async fn audit_trail(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.state().audit.get(&id).map(|events| events.values().cloned().collect()).unwrap_or_default())
    }

    async fn record_event_because(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let audit = AuditEvent {
            request_id: request.id,
            version: request.version,
            event,
            from: Some(request.status),
            to: request.status,
            at,
            actor,
            reason,
        };
        let sk = super::event_sort_key(&audit_sk(request.version), event, at, audit.reason.as_deref());
        self.state().audit.entry(request.id).or_default().insert(sk, audit);
        Ok(())
    }

    async fn mark_acknowledged(&self, id: RequestId, at: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(request) = self.state().requests.get_mut(&id) {
            request.acknowledged_at.get_or_insert(at);
        }
        Ok(())
    }

    async fn scrub_request(&self, id: RequestId) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(request) = state.requests.get_mut(&id) {
            request.name = None;
            request.details = None;
            request.corrections = None;
            request.recipient = None;
            if let Some(dispute) = &mut request.dispute {
                dispute.statement = None;
            }
        }
        for slot in [TokenSlot::Requester, TokenSlot::Recipient] {
            state.secrets.remove(&(id, slot));
            state.downloads.remove(&(id, slot));
        }
        state.erasures.remove(&id);
        Ok(())
    }
}

impl Secrets for MemoryStore {
    async fn secret(&self, id: RequestId, slot: TokenSlot) -> Result<Option<Verification>, StoreError> {
        Ok(self.state().secrets.get(&(id, slot)).cloned())
    }

    async fn issue_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &LiveToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let usable = slot.usable_in();
        if !state.requests.get(&id).is_some_and(|r| r.status == usable) {
            return Ok(false);
        }
        let current = state.secrets.get(&(id, slot)).cloned().unwrap_or_default();
        state.secrets.insert((id, slot), current.with_token(token.clone(), now));
        Ok(true)
    }

    async fn count_wrong_attempt(
        &self,
        id: RequestId,
        slot: TokenSlot,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<WrongAttempt, StoreError> {
        let mut state = self.state();
        let Some(current) = state.secrets.get(&(id, slot)) else { return Ok(WrongAttempt::NoSecret) };
        let (next, outcome) = current.after_wrong_attempt(now, limit);
        state.secrets.insert((id, slot), next);
        Ok(outcome)
    }

    async fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &DownloadToken,
    ) -> Result<(), StoreError> {
        self.state().downloads.insert((id, slot), token.clone());
        Ok(())
    }

    async fn download_tokens(&self, id: RequestId) -> Result<Vec<DownloadToken>, StoreError> {
        let state = self.state();
        Ok([TokenSlot::Requester, TokenSlot::Recipient]
            .into_iter()
            .filter_map(|slot| state.downloads.get(&(id, slot)).cloned())
            .collect())
    }
}

impl EffectLedger for MemoryStore {
    async fn claim_effect(
        &self,
        id: RequestId,
        effect: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let mut state = self.state();
        let key = (id, effect.to_owned());
        match state.effects.get(&key) {
            Some(Effect::Done) => Ok(Claim::AlreadyDone),
            Some(Effect::Claimed { until }) if *until >= now.timestamp() => Ok(Claim::InProgress),
            _ => {
                state.effects.insert(key, Effect::Claimed { until: (now + lease).timestamp() });
                Ok(Claim::Acquired)
            }
        }
    }

    async fn finish_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
        self.state().effects.insert((id, effect.to_owned()), Effect::Done);
        Ok(())
    }

    async fn release_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let key = (id, effect.to_owned());
        if matches!(state.effects.get(&key), Some(Effect::Claimed { .. })) {
            state.effects.remove(&key);
        }
        Ok(())
    }
}

impl DueIndex for MemoryStore {
    async fn open_requests(&self, query: &OpenQuery) -> Result<OpenPage, StoreError> {
        if !query.status.is_open() {
            return Ok(OpenPage::default());
        }
        let after = match &query.after {
            Some(after) => {
                page_key_id(after, query.status)?;
                Some(after.sort_key.clone())
            }
            None => None,
        };
        let upper = query.until.map(upper_sort_key);
        let state = self.state();
        let mut matching: Vec<(String, &RequestRecord)> = state
            .requests
            .values()
            .filter(|r| r.status == query.status)
            .filter_map(|r| due_sort_key(r).map(|key| (key, r)))
            .filter(|(key, _)| upper.as_ref().is_none_or(|upper| key <= upper))
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let limit = query.limit.clamp(1, 1000) as usize;
        let more = matching.len() > limit;
        matching.truncate(limit);
        let next = more.then(|| PageKey {
            status: query.status,
            sort_key: matching.last().map(|(key, _)| key.clone()).unwrap_or_default(),
        });
        let requests: Vec<OpenRequest> = matching
            .iter()
            .map(|(_, r)| OpenRequest {
                id: r.id,
                status: r.status,
                version: r.version,
                kind: r.kind,
                regime: r.regime,
                language: r.language,
                received_at: r.received_at,
                due_on: r.due_on,
                original_due_on: r.original_due_on,
                acknowledge_by: r.acknowledge_by,
                acknowledged_at: r.acknowledged_at,
            })
            .collect();
        Ok(OpenPage { items_read: requests.len() as u64, requests, next })
    }
}

impl People for MemoryStore {
    async fn suppressions(&self, subject: &SubjectKey) -> Result<Vec<Suppression>, StoreError> {
        let state = self.state();
        Ok(SuppressionList::ALL
            .into_iter()
            .filter_map(|list| state.suppressions.get(&(subject.clone(), list)).cloned())
            .collect())
    }

    async fn history(&self, subject: &SubjectKey) -> Result<Vec<PastRequest>, StoreError> {
        Ok(self.state().history.get(subject).cloned().unwrap_or_default())
    }

    async fn erasure_mark(&self, subject: &SubjectKey) -> Result<Option<ErasureMark>, StoreError> {
        Ok(self.state().erasure_marks.get(subject).cloned())
    }

    async fn mark_erasure_started(
        &self,
        subject: &SubjectKey,
        request_id: RequestId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let later = |m: &ErasureMark| super::erasure_instant(m.started_at) > super::erasure_instant(at);
        if !state.erasure_marks.get(subject).is_some_and(later) {
            state.erasure_marks.insert(subject.clone(), ErasureMark { request_id, started_at: at });
        }
        Ok(())
    }

    async fn mail_suppression(&self, subject: &SubjectKey) -> Result<Option<MailSuppression>, StoreError> {
        Ok(self.state().mail_suppressions.get(subject).cloned())
    }

    async fn suppress_mail(
        &self,
        subject: &SubjectKey,
        suppression: &MailSuppression,
    ) -> Result<(), StoreError> {
        self.state().mail_suppressions.entry(subject.clone()).or_insert_with(|| suppression.clone());
        Ok(())
    }

    async fn charge_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<bool, StoreError> {
        let (number, _) = budget_window(now, window);
        let mut state = self.state();
        let sent = state.budgets.entry((charge.key.clone(), number)).or_default();
        if *sent >= charge.limit {
            return Ok(false);
        }
        *sent += 1;
        Ok(true)
    }

    async fn refund_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<(), StoreError> {
        let (number, _) = budget_window(now, window);
        if let Some(sent) = self.state().budgets.get_mut(&(charge.key.clone(), number)) {
            *sent = sent.saturating_sub(1);
        }
        Ok(())
    }
}

impl ErasureLog for MemoryStore {
    async fn erasure_progress(&self, id: RequestId) -> Result<Option<ErasureProgress>, StoreError> {
        Ok(self.state().erasures.get(&id).cloned())
    }

    async fn save_erasure_progress(
        &self,
        id: RequestId,
        progress: &ErasureProgress,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.state().erasures.insert(id, progress.clone());
        Ok(())
    }
}

impl super::RecipientWaits for MemoryStore {
    async fn await_recipient(&self, wait: &super::RecipientWait) -> Result<(), StoreError> {
        self.state().recipient_waits.insert(wait.request_id, wait.lapses_at);
        Ok(())
    }

    async fn lapsed_recipient_waits(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<super::RecipientWait>, StoreError> {
        let mut waits: Vec<super::RecipientWait> = self
            .state()
            .recipient_waits
            .iter()
            .filter(|(_, lapses_at)| **lapses_at <= now)
            .map(|(id, lapses_at)| super::RecipientWait { request_id: *id, lapses_at: *lapses_at })
            .collect();
        waits.sort_by_key(|w| (w.lapses_at, w.request_id.to_string()));
        waits.truncate(limit as usize);
        Ok(waits)
    }

    async fn end_recipient_wait(&self, id: RequestId) -> Result<(), StoreError> {
        self.state().recipient_waits.remove(&id);
        Ok(())
    }
}

impl SourceTasks for MemoryStore {
    async fn open_task(&self, task: &SourceTask) -> Result<SourceTask, StoreError> {
        let mut state = self.state();
        let key = (task.request_id, task.operation, task.source.clone());
        let (stored, _) = state.tasks.entry(key).or_insert_with(|| (task.clone(), !task.state.is_answered()));
        Ok(stored.clone())
    }

    async fn task(
        &self,
        id: RequestId,
        operation: SourceOperation,
        source: &str,
    ) -> Result<Option<SourceTask>, StoreError> {
        Ok(self.state().tasks.get(&(id, operation, source.to_owned())).map(|(t, _)| t.clone()))
    }

    async fn tasks(&self, id: RequestId) -> Result<Vec<SourceTask>, StoreError> {
        let state = self.state();
        Ok(state.tasks.values().filter(|(t, _)| t.request_id == id).map(|(t, _)| t.clone()).collect())
    }

    async fn update_task(&self, next: &SourceTask) -> Result<(), StoreError> {
        let mut state = self.state();
        let key = (next.request_id, next.operation, next.source.clone());
        match state.tasks.get_mut(&key) {
            Some((stored, listed)) if stored.version + 1 == next.version => {
                *stored = next.clone();
                *listed = !next.state.is_answered();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn waiting_tasks(&self, limit: u32) -> Result<Vec<SourceTask>, StoreError> {
        let state = self.state();
        let mut waiting: Vec<SourceTask> =
            state.tasks.values().filter(|(_, listed)| *listed).map(|(t, _)| t.clone()).collect();
        waiting.sort_by_key(|t| (t.answer_by, t.request_id.to_string()));
        waiting.truncate(limit as usize);
        Ok(waiting)
    }

    async fn retire_task(&self, task: &SourceTask) -> Result<(), StoreError> {
        if let Some((_, listed)) =
            self.state().tasks.get_mut(&(task.request_id, task.operation, task.source.clone()))
        {
            *listed = false;
        }
        Ok(())
    }
}
