//! What every function shares: the domain (plain Rust, no AWS types), the clock, the
//! configuration, the HTTP edge helpers, and the narrow ports with their one AWS implementation.

pub mod api;
pub mod aws;
pub mod budget;
pub mod clock;
pub mod config;
pub mod datamap;
pub mod deps;
pub mod domain;
pub mod intake;
pub mod jobs;
pub mod mail;
pub mod outside;
pub mod pages;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod tombstones;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, Env};
pub use deps::{AwsDeps, Deps, MemoryDeps};
