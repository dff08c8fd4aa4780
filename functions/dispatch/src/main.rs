use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let dispatcher = dispatch::Dispatcher::from_env().await?;
    run(service_fn(|event| dispatch::handle(&dispatcher, event))).await
}
