use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let eraser = erasure::Eraser::from_env().await?;
    run(service_fn(|event| erasure::handle(&eraser, event))).await
}
