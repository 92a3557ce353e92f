//! Providers on AWS, through the official SDK: credentials and region from the standard
//! chain (a target's `region` overrides the region), and `AWS_ENDPOINT_URL` pointing every
//! client at another endpoint, such as a test server.

pub mod autoscaling;
pub mod lag;
pub mod rds;
pub mod route53;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub use crate::agents::providers::poll::wait_until;
use crate::agents::work::Failure;

/// The SDK's configuration for a target, read when an attempt needs it.
pub async fn config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    loader.load().await
}

/// Error codes that no retry will change: the request, the rights or the resource is wrong.
const PERMANENT: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidInput",
    "NoSuchHostedZone",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "GlobalClusterNotFoundFault",
    "InvalidChangeBatch",
];

/// An SDK call's failure as a stage failure: throttling, outages and a busy resource may
/// pass; a wrong request or missing rights won't.
pub fn failure<E, R>(what: &str, e: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    let detail = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    let message = format!("{what}: {detail}");
    match code.as_deref() {
        Some(c) if PERMANENT.contains(&c) => Failure::permanent(message),
        _ => Failure::retryable(message),
    }
}
