use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let admin = admin::Admin::from_env().await?;
    run(service_fn(|request| admin::handle(&admin, request))).await
}
