//! How a request comes in, whoever takes it: the person online (the `intake` function's JSON API
//! and privacy center form) or a staff member who took it by phone, post, email, chat or in
//! person (the staff API). One parser ([`Submission`]) and one path ([`accept`]): the request is
//! stored with its deadlines and the verification email goes to the person's mailbox, within the
//! same mail budgets, whichever way it came; only its [`Intake`](crate::domain::Intake) differs.

mod accept;
mod submission;

pub use accept::{AcceptError, IntakeDeps, IntakeMail, accept};
pub use submission::{
    CCPA_PERIOD_START, FIELDS, FieldError, MAX_CORRECTION_CHARS, MAX_CORRECTIONS, MAX_DETAILS_CHARS,
    MAX_NAME_CHARS, Problem, RawAgent, RawSubmission, Submission, correctable,
};
