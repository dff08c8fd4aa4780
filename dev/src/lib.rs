//! Developer tooling for the local stack. Nothing here is deployed.

pub mod burst;
pub mod chaos;
pub mod gateway;
pub mod mail_preview;
pub mod mailbox;
pub mod provision;
pub mod pump;
pub mod redrive;
pub mod roles;
pub mod seed;
pub mod source_server;
pub mod stream;
pub mod template;

/// The emulator's address: the standard `AWS_ENDPOINT_URL`, else moto's default port.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}
