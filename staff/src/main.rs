//! `staff`: the privacy staff's command-line client. Everything but the process lives in the lib.

use std::io::{stderr, stdout};
use std::process::ExitCode;

use staff_cli::{CredentialSource, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let code = run(std::env::args_os(), CredentialSource::AwsChain, &mut stdout(), &mut stderr()).await;
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
