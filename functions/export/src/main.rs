use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let worker = export::Worker::from_env().await?;
    run(service_fn(|event| export::handle_jobs(&worker, event))).await
}
