//! `template.yaml` against the code: the same routes in the template, in `local-gateway` and in
//! `functions/openapi.yaml` (both directions), a workspace binary behind every function, and
//! no secret value in any function's environment, each allowed to read only its own secrets.

use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (method, path, binary) of one route.
type Route = (String, String, String);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml(path: &str) -> Value {
    let file = root().join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// The `AWS::Serverless::Function` resources: (logical id, Metadata.Binary, properties).
fn template_functions(template: &Value) -> Vec<(String, String, Value)> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| {
            let id = id.as_str().expect("logical id").to_string();
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"))
                .to_string();
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}"
            );
            (id, binary, r["Properties"].clone())
        })
        .collect()
}

fn template_routes() -> BTreeSet<Route> {
    let template = yaml("template.yaml");
    let mut routes = BTreeSet::new();
    for (id, binary, props) in template_functions(&template) {
        let Some(events) = props["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            let method = p["Method"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}.{name:?} Method"));
            let path = p["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}.{name:?} Path"));
            let fresh = routes.insert((method.to_uppercase(), path.to_string(), binary.clone()));
            assert!(fresh, "{method} {path} is declared twice in template.yaml");
        }
    }
    routes
}

fn gateway_routes() -> BTreeSet<Route> {
    local_gateway::ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.function.binary().to_string(),
            )
        })
        .collect()
}

fn openapi_routes() -> BTreeSet<(String, String)> {
    let doc = yaml("functions/openapi.yaml");
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("path").to_string();
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method").to_lowercase();
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn without_function(routes: &BTreeSet<Route>) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect()
}

/// Both directions, with the differences spelled out.
fn assert_same<T: Ord + std::fmt::Debug>(
    left: &BTreeSet<T>,
    l: &str,
    right: &BTreeSet<T>,
    r: &str,
) {
    let only_left: Vec<_> = left.difference(right).collect();
    let only_right: Vec<_> = right.difference(left).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "routes differ:\n  in {l} only: {only_left:?}\n  in {r} only: {only_right:?}"
    );
}

#[test]
fn template_and_local_gateway_route_the_same_requests_to_the_same_functions() {
    let template = template_routes();
    assert!(template.len() >= 17, "{template:?}");
    assert_same(
        &template,
        "template.yaml",
        &gateway_routes(),
        "local-gateway ROUTES",
    );
}

#[test]
fn template_and_openapi_document_the_same_routes() {
    assert_same(
        &without_function(&template_routes()),
        "template.yaml",
        &openapi_routes(),
        "functions/openapi.yaml",
    );
}

#[test]
fn local_gateway_dispatches_every_route_to_its_function() {
    for r in local_gateway::ROUTES {
        let concrete = r
            .path
            .replace("{id}", "00000000-0000-4000-8000-000000000000");
        assert_eq!(
            local_gateway::function_for(&concrete),
            Some(r.function),
            "{} {}",
            r.method,
            r.path
        );
    }
}

#[test]
fn every_function_in_the_template_is_a_workspace_binary() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let binaries: BTreeSet<String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect();

    let template = yaml("template.yaml");
    let functions = template_functions(&template);
    assert_eq!(
        functions.len(),
        6,
        "auth-api, admin-api, tasks-api, analyzer, janitor, migrate"
    );
    let missing: Vec<&str> = functions
        .iter()
        .map(|(_, b, _)| b.as_str())
        .filter(|b| !binaries.contains(*b))
        .collect();
    assert!(
        missing.is_empty(),
        "template.yaml deploys {missing:?}, which no workspace crate builds"
    );
}

#[test]
fn analyzer_queue_settings_follow_the_pipeline_guarantees() {
    let template = yaml("template.yaml");
    let resources = &template["Resources"];
    let analyzer = &resources["AnalyzerFunction"]["Properties"];
    let timeout = analyzer["Timeout"].as_u64().expect("analyzer Timeout");
    let event = &analyzer["Events"]["Uploaded"]["Properties"];
    assert_eq!(event["BatchSize"].as_u64(), Some(1));
    assert_eq!(
        event["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    let queue = &resources["AnalysisQueue"]["Properties"];
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s < 6 x {timeout} s"
    );
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(5));
    let dlq = &resources["AnalysisDeadLetterQueue"]["Properties"];
    assert_eq!(dlq["MessageRetentionPeriod"].as_u64(), Some(14 * 24 * 3600));
}

/// `!Sub "..."`, `!Ref X` and the like: the value under the tag.
fn untagged(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

#[test]
fn every_deployed_stage_runs_as_production() {
    let template = yaml("template.yaml");
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        env["ENVIRONMENT"].as_str(),
        Some("production"),
        "ENVIRONMENT must be the literal production for every stage, not a condition"
    );
    for (id, _, props) in template_functions(&template) {
        let own = &props["Environment"]["Variables"]["ENVIRONMENT"];
        assert!(own.is_null(), "{id} overrides ENVIRONMENT");
    }
}

#[test]
fn the_web_csp_admits_only_its_own_origin_and_the_capture_bucket() {
    let web = yaml("infra/web.yaml");
    let csp = untagged(
        &web["Resources"]["SecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]
            ["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"],
    )
    .as_str()
    .expect("CSP");
    let connect = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("connect-src"))
        .expect("connect-src");
    assert_eq!(connect, "connect-src 'self' ${UploadOrigin}", "{csp}");
    assert!(!csp.contains('*'), "no wildcard origin: {csp}");
    let pattern = web["Parameters"]["UploadOrigin"]["AllowedPattern"]
        .as_str()
        .expect("UploadOrigin pattern");
    assert!(pattern.contains(r"\.s3\."), "{pattern}");
    let output = untagged(&yaml("template.yaml")["Outputs"]["UploadOrigin"]["Value"])
        .as_str()
        .expect("UploadOrigin output")
        .to_string();
    assert_eq!(
        output,
        "https://${CaptureBucket}.s3.${AWS::Region}.${AWS::URLSuffix}"
    );
}

#[test]
fn cloudfront_sends_api_paths_to_the_http_api_uncached_with_cookies() {
    let web = yaml("infra/web.yaml");
    let dist = &web["Resources"]["WebDistribution"]["Properties"]["DistributionConfig"];
    // CacheBehaviors: !If [HasApi, [behaviour], !Ref AWS::NoValue]
    let behaviours = untagged(&dist["CacheBehaviors"]);
    let api = &behaviours[1][0];
    assert_eq!(api["PathPattern"].as_str(), Some("/api/*"));
    assert_eq!(api["TargetOriginId"].as_str(), Some("api"));
    assert_eq!(
        api["CachePolicyId"].as_str(),
        Some("4135ea2d-6df8-44a3-9df3-4b5a84be39ad"),
        "CachingDisabled"
    );
    assert_eq!(
        api["OriginRequestPolicyId"].as_str(),
        Some("b689b0a8-53d0-40ab-baf2-68738e2966ac"),
        "AllViewerExceptHostHeader: cookies, Authorization, Origin and queries reach the API"
    );
    let methods: Vec<&str> = api["AllowedMethods"]
        .as_sequence()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(&m), "{m}");
    }
    let origins = dist["Origins"].as_sequence().expect("origins");
    let api_origin = untagged(&origins[1])[1].clone();
    assert_eq!(api_origin["Id"].as_str(), Some("api"));
    assert_eq!(
        api_origin["CustomOriginConfig"]["OriginProtocolPolicy"].as_str(),
        Some("https-only")
    );
    let deploy = std::fs::read_to_string(root().join("infra/deploy")).expect("infra/deploy");
    assert!(deploy.contains("\"ApiDomain=$(output \"$APP_STACK\" ApiDomain)\""));
}

/// The name a `!Ref Name` points at.
fn ref_name(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(String::from),
        _ => None,
    }
}

/// A YAML scalar or list as a list.
fn one_or_many(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Every string under `v`, tags looked through (`!Sub`, `!Join` lists...).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Tagged(t) => strings(&t.value, out),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}

/// Variables that would hold a secret value rather than its ARN.
const SECRET_VALUE_VARIABLES: [&str; 5] = [
    "SECRET_KEY",
    "CSRF_SECRET_KEY",
    "ADMIN_PASSWORD",
    "APP_DATABASE_PASSWORD",
    "DATABASE_PASSWORD",
];

#[test]
fn no_function_environment_holds_a_secret_value() {
    let template = yaml("template.yaml");
    let mut environments = vec![(
        "Globals".to_string(),
        template["Globals"]["Function"]["Environment"]["Variables"].clone(),
    )];
    for (id, _, props) in template_functions(&template) {
        environments.push((id, props["Environment"]["Variables"].clone()));
    }
    for (id, env) in environments {
        let Some(vars) = env.as_mapping() else {
            continue;
        };
        for (name, value) in vars {
            let name = name.as_str().expect("variable name");
            let mut texts = Vec::new();
            strings(value, &mut texts);
            // A dynamic reference is resolved into the function configuration, readable by
            // anyone allowed lambda:GetFunctionConfiguration.
            assert!(
                !texts.iter().any(|t| t.contains("{{resolve:secretsmanager")
                    || t.contains("{{resolve:ssm-secure")),
                "{id}: {name} holds a resolved secret; give its ARN (*_SECRET_ARN) instead"
            );
            assert!(
                !SECRET_VALUE_VARIABLES.contains(&name),
                "{id}: {name} is a secret value; give {name}_SECRET_ARN instead"
            );
        }
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for (name, _) in globals.as_mapping().expect("Globals variables") {
        let name = name.as_str().unwrap();
        assert!(
            !name.ends_with("_SECRET_ARN"),
            "Globals hands {name} to every function; name secrets per function"
        );
    }
}

/// The secrets (template parameters) a function's environment names, by variable.
fn secret_arns_of(props: &Value) -> BTreeSet<(String, String)> {
    props["Environment"]["Variables"]
        .as_mapping()
        .map(|vars| {
            vars.iter()
                .filter_map(|(k, v)| {
                    let k = k.as_str()?;
                    k.ends_with("_SECRET_ARN").then(|| {
                        let param = ref_name(v)
                            .unwrap_or_else(|| panic!("{k} must be a !Ref to a secret parameter"));
                        (k.to_string(), param)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a function's policies allow `secretsmanager:GetSecretValue` on (as
/// parameter names); any other Secrets Manager action or a wildcard fails the test.
fn readable_secrets_of(id: &str, props: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for policy in one_or_many(&props["Policies"]) {
        let mut texts = Vec::new();
        strings(&policy, &mut texts);
        if policy["Statement"].is_null() {
            assert!(
                !texts.iter().any(|t| t.to_lowercase().contains("secret")),
                "{id}: a managed policy or policy template touches secrets: {policy:?}"
            );
            continue;
        }
        for statement in one_or_many(&policy["Statement"]) {
            let actions: Vec<String> = one_or_many(&statement["Action"])
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            if !actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                continue;
            }
            assert_eq!(
                actions,
                ["secretsmanager:GetSecretValue"],
                "{id}: only GetSecretValue, in a statement of its own"
            );
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{id}");
            for resource in one_or_many(&statement["Resource"]) {
                let name = ref_name(&resource).unwrap_or_else(|| {
                    panic!("{id}: GetSecretValue on {resource:?}; name each secret with !Ref, no wildcard")
                });
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn each_function_may_read_exactly_the_secrets_it_uses() {
    let template = yaml("template.yaml");
    let owner = "DatabaseSecretArn";
    let app = "AppDatabaseSecretArn";
    let api_keys = [
        ("SECRET_KEY_SECRET_ARN", "SecretKeySecretArn"),
        ("CSRF_SECRET_KEY_SECRET_ARN", "CsrfSecretKeySecretArn"),
    ];
    let expected = |binary: &str| -> BTreeSet<(String, String)> {
        let mut v: Vec<(&str, &str)> = match binary {
            "auth-api" | "admin-api" | "tasks-api" => {
                let mut v = vec![("DATABASE_SECRET_ARN", app)];
                v.extend(api_keys);
                v
            }
            // The pipeline: its login only, no API key.
            "analyzer" | "janitor" => vec![("DATABASE_SECRET_ARN", app)],
            // The owner's login, the role it grants, the first admin password.
            "migrate" => vec![
                ("DATABASE_SECRET_ARN", owner),
                ("APP_DATABASE_SECRET_ARN", app),
                ("ADMIN_PASSWORD_SECRET_ARN", "AdminPasswordSecretArn"),
            ],
            other => panic!("no secrets are expected for {other}"),
        };
        v.sort();
        v.into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    for (id, binary, props) in template_functions(&template) {
        let named = secret_arns_of(&props);
        assert_eq!(
            named,
            expected(&binary),
            "{id}: the secrets in its environment"
        );
        let used: BTreeSet<String> = named.into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            readable_secrets_of(&id, &props),
            used,
            "{id}: GetSecretValue must be allowed on exactly the secrets it names"
        );
    }
    // No secret is readable through the Globals either.
    let mut texts = Vec::new();
    strings(&template["Globals"], &mut texts);
    assert!(!texts.iter().any(|t| t.contains("secretsmanager")));
}
