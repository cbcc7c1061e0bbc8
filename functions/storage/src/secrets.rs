//! Secrets Manager adapter of [`common::settings::SecretSource`]: the cold start reads each
//! secret its `*_SECRET_ARN` variables name, once, and keeps the value in the typed settings.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;
use common::settings::SecretSource;

#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(config: &SdkConfig) -> Self {
        SecretsManager {
            client: Client::new(config),
        }
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    #[tracing::instrument(skip(self))]
    async fn secret_string(&self, arn: &str) -> Result<String, String> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            // The SDK's message names the error (ResourceNotFoundException, AccessDenied...),
            // never a value.
            .map_err(|e| format!("GetSecretValue failed: {}", DisplayErrorContext(&e)))?;
        out.secret_string
            .ok_or_else(|| "the secret holds no string (SecretBinary is not read)".to_string())
    }
}
