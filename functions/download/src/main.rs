use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let downloads = download::Downloads::from_env().await?;
    run(service_fn(|request| download::handle(&downloads, request))).await
}
