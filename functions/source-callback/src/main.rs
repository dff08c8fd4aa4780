use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let receiver = source_callback::Receiver::from_env().await?;
    run(service_fn(|request| source_callback::handle(&receiver, request))).await
}
