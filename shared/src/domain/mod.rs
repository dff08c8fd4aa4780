//! The domain: parsed at the edge, private fields, no AWS types.

mod agent;
mod calendar;
mod channel;
mod dispute;
mod email;
mod export;
mod kind;
mod language;
mod record;
mod region;
mod report;
mod request;
mod source_task;
mod staff;
mod status;
mod status_link;
mod token;
mod transition;

pub use agent::{Agent, Relationship, UnknownRelationship};
pub use calendar::{BusinessCalendar, CalendarError, Deadlines};
pub use channel::{Intake, OfflineChannel};
pub use dispute::{Dispute, Restriction, RestrictionState};
pub use email::{EmailAddress, EmailError, SubjectKey};
pub use export::{NoSuchPart, PartOf, export_key, export_plan_key, export_prefix};
pub use kind::RequestKind;
pub use language::Language;
pub use record::{
    Channel, ComplianceRecord, DenialBasis, MIN_RECORD_RETENTION_MONTHS, Outcome, OutsideSources, PartReason,
    RecordRetention, RetentionTooShort,
};
pub use region::{Regime, Region, RegionError};
pub use report::{CSV_HEADER, Figures, ReportRow, YearReport, records_csv};
pub use request::{
    Actor, AuditEvent, ErasedSource, ErasedUnit, ErasureReceipt, ReceiptWording, RequestId, RequestRecord,
    SourceWording, Triage,
};
pub use source_task::{
    ANSWER_MARGIN_DAYS, JobId, SourceOperation, SourceTask, StagedFile, TaskChange, TaskChangeError,
    TaskProblem, TaskState, answer_by,
};
pub use staff::{
    CostEstimate, CostEstimateError, ExtensionError, MAX_STAFF_TEXT_CHARS, StaffText, StaffTextError,
};
pub use status::{Event, Status, TransitionError};
pub use status_link::{Audience, ShortStatusKey, StatusKey, StatusToken};
pub use token::{TokenHash, VerificationToken};
pub use transition::{Completion, ENTERPRISE_REASON, ExpiryReason, LIMIT_REASON, Transition};

/// True when `text` holds a character that must never reach a mail header, a log line or a
/// stored field: CR, LF, NUL and every other control character.
pub fn has_control_chars(text: &str) -> bool {
    text.chars().any(char::is_control)
}
