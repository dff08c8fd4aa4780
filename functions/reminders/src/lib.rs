//! `reminders`: the daily sweep (skeleton).
