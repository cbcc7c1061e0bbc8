//! The settings' secrets against the real Secrets Manager API (LocalStack, started by
//! `localstack/up`): created here, named by ARN in a production environment, read once.

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use common::settings::{
    ApiKeys, Environment, Settings, SettingsError, ADMIN_PASSWORD_SECRET_ARN,
    CSRF_SECRET_KEY_SECRET_ARN, DATABASE_SECRET_ARN, SECRET_KEY_SECRET_ARN,
};
use std::collections::HashMap;
use storage::secrets::SecretsManager;

/// `localstack/local.env` of this checkout (endpoint, region, test keys).
fn local_env() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../localstack/local.env");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run localstack/up first"));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

struct Stack {
    client: Client,
    source: SecretsManager,
    prefix: String,
}

impl Stack {
    async fn new() -> Stack {
        let env = local_env();
        let aws = storage::aws::sdk_config(|k| env.get(k).cloned()).await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Stack {
            client: Client::new(&aws),
            source: SecretsManager::new(&aws),
            prefix: format!("test/{}-{nanos}", std::process::id()),
        }
    }

    /// Creates the secret `name` holding `value`; returns its ARN.
    async fn secret(&self, name: &str, value: &str) -> String {
        self.client
            .create_secret()
            .name(format!("{}/{name}", self.prefix))
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a secret in LocalStack ({}); run localstack/up",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })
            .arn
            .expect("ARN")
    }
}

/// A deployed function's environment plus `extra`.
fn deployed(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut map: HashMap<String, String> = HashMap::from([
        ("ENVIRONMENT".into(), "production".into()),
        (
            "DATABASE_URL".into(),
            "postgres://proxy.example:5432/pcap_analyzer".into(),
        ),
    ]);
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    move |k| map.get(k).cloned()
}

const JWT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
const CSRF: &str = "fedcba9876543210fedcba9876543210fedcba9876543210";

#[tokio::test]
async fn a_production_start_reads_each_secret_its_arns_name() {
    let stack = Stack::new().await;
    let db = stack
        .secret(
            "database",
            r#"{"username":"pcap_app","password":"app-password-1"}"#,
        )
        .await;
    let admin = stack.secret("admin", "Admin-Password-123").await;
    let jwt = stack.secret("jwt", JWT).await;
    let csrf = stack.secret("csrf", CSRF).await;

    let settings = Settings::load(
        deployed(&[
            (DATABASE_SECRET_ARN, &db),
            (ADMIN_PASSWORD_SECRET_ARN, &admin),
        ]),
        &stack.source,
    )
    .await
    .expect("settings");
    let keys = ApiKeys::load(
        deployed(&[
            (SECRET_KEY_SECRET_ARN, &jwt),
            (CSRF_SECRET_KEY_SECRET_ARN, &csrf),
        ]),
        Environment::Production,
        &stack.source,
    )
    .await
    .expect("keys");

    let login = settings.database.credentials.expect("database login");
    assert_eq!(login.username, "pcap_app");
    assert_eq!(login.password.expose(), "app-password-1");
    assert_eq!(
        settings.admin_password.expect("admin password").expose(),
        "Admin-Password-123"
    );
    assert_eq!(keys.secret_key.expose(), JWT);
    assert_eq!(keys.csrf_secret_key.expose(), CSRF);
}

#[tokio::test]
async fn a_missing_secret_is_an_error_naming_its_variable_and_arn() {
    let stack = Stack::new().await;
    let db = stack
        .secret("gone", r#"{"username":"pcap_app","password":"p"}"#)
        .await;
    stack
        .client
        .delete_secret()
        .secret_id(&db)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete");

    let err = Settings::load(deployed(&[(DATABASE_SECRET_ARN, &db)]), &stack.source)
        .await
        .unwrap_err();

    assert_eq!(err.var(), DATABASE_SECRET_ARN);
    assert!(err.to_string().contains(&db), "{err}");
}

#[tokio::test]
async fn an_unreadable_secret_is_an_error_naming_it() {
    let stack = Stack::new().await;
    let binary = stack
        .client
        .create_secret()
        .name(format!("{}/binary", stack.prefix))
        .secret_binary(Blob::new(JWT.as_bytes()))
        .send()
        .await
        .expect("create")
        .arn
        .expect("ARN");
    let csrf = stack.secret("csrf", CSRF).await;

    let err = ApiKeys::load(
        deployed(&[
            (SECRET_KEY_SECRET_ARN, &binary),
            (CSRF_SECRET_KEY_SECRET_ARN, &csrf),
        ]),
        Environment::Production,
        &stack.source,
    )
    .await
    .unwrap_err();

    assert!(matches!(err, SettingsError::Secret { .. }), "{err}");
    assert_eq!(err.var(), SECRET_KEY_SECRET_ARN);
    assert!(err.to_string().contains(&binary), "{err}");
    assert!(!err.to_string().contains(JWT), "{err}");
}
