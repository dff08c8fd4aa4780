use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    privacy_shared::telemetry::init();
    let events = mail_events::MailEvents::from_env().await?;
    run(service_fn(|event| mail_events::handle(&events, event))).await
}
