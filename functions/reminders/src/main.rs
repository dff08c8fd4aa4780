use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let sweeper = reminders::Sweeper::from_env().await?;
    run(service_fn(|event| reminders::handle(&sweeper, event))).await
}
