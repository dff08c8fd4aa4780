//! The staff command-line client (skeleton).
