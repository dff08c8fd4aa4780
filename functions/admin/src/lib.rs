//! `admin`: the staff API (skeleton).
