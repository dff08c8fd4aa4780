use lambda_http::{Error, run, service_fn};
use privacy_shared::AwsDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let deps = AwsDeps::from_env().await?;
    run(service_fn(|request| intake::handle(&deps, request))).await
}
