//! What every AWS adapter keeps of a failed call: the operation and the service's error code,
//! never the message (a message can quote the data that was sent or stored).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The service's error code (`ConditionalCheckFailedException`, `NoSuchKey`, …), or what kind of
/// failure kept the call from getting an answer (`timeout`, `dispatch_failure`, …).
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(service) => service.err().code().unwrap_or("unknown_service_error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch_failure".to_owned(),
        SdkError::ResponseError(_) => "response_error".to_owned(),
        SdkError::ConstructionFailure(_) => "construction_failure".to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// Whether the service answered with one of these error codes.
pub fn has_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, codes: &[&str]) -> bool {
    err.as_service_error().and_then(|e| e.code()).is_some_and(|code| codes.contains(&code))
}
