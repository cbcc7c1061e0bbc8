//! The SDK configuration shared by the S3 and SQS adapters.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Region used when none is configured (LocalStack's default).
const DEFAULT_REGION: &str = "us-east-1";

/// SDK configuration from `lookup` (the environment, or `localstack/local.env` for the dev
/// server): `AWS_REGION`, `AWS_ENDPOINT_URL` (LocalStack), and static keys when both
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are given; otherwise the default credential
/// chain (the Lambda execution role).
pub async fn sdk_config(lookup: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    // HTTPS on rustls with ring: no aws-lc build, one crypto provider for the whole workspace.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let region = get("AWS_REGION")
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new(region));
    if let Some(endpoint) = get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret,
            get("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    loader.load().await
}
