//! Helpers of the end-to-end tests: a whole local stack per test (its own database, bucket,
//! queue and DLQ in the real Postgres and LocalStack, so tests run in parallel without seeing
//! each other's events), a gateway on a free port, and a small HTTP client.
//!
//! When Postgres or LocalStack is not running, the tests fail saying so; they are never skipped.

pub mod lambda;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use db::test_support::{fresh_database, local_env, TestDatabase};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::s3::S3Store;
use storage::sqs::SqsQueue;

/// Password of every test account (passes the password policy).
pub const PASSWORD: &str = "Correct-Horse-Battery-42-Staple";
/// How long a test waits for an analysis to finish.
pub const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(90);

/// `../shared/captures` next to the repository.
pub fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

pub fn capture(name: &str) -> Vec<u8> {
    let path = captures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// tshark's frame count of a capture (`ORACLE.tsv`, column `packets`).
pub fn oracle_packets(name: &str) -> u64 {
    let text = std::fs::read_to_string(captures_dir().join("ORACLE.tsv")).expect("ORACLE.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = header
        .iter()
        .position(|h| *h == "packets")
        .expect("packets column");
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .and_then(|f| f[col].parse().ok())
        .unwrap_or_else(|| panic!("{name} not in ORACLE.tsv"))
}

/// Shorter lifetimes some tests need.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub upload_url_ttl: Option<Duration>,
    /// How long reports are kept after completion (the analyzer's `REPORT_TTL_HOURS`).
    pub report_ttl: Option<Duration>,
    pub janitor_stale_after: Option<Duration>,
    /// Uploads above this size go up in parts (`MULTIPART_THRESHOLD_MB`, in bytes here).
    pub multipart_threshold_bytes: Option<u64>,
    /// Age from which the janitor aborts a multipart upload without a task.
    pub janitor_orphan_upload_after: Option<Duration>,
    /// Leave the queue alone (the test delivers messages itself).
    pub no_poller: bool,
}

pub struct Stack {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    pub store: Arc<S3Store>,
    pub queue: Arc<SqsQueue>,
    pub dlq: Arc<SqsQueue>,
    pub analyzer: Arc<analyzer::State>,
    pub janitor: Arc<janitor::State>,
    pub bucket: String,
}

pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request to an `http://` URL.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    http_from(None, method, url, headers, body).await
}

/// [`http`] from a local address of our choosing (another client on loopback: 127.0.0.2).
pub async fn http_from(
    local: Option<std::net::IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let uri: hyper::Uri = url.parse().unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
    let authority = uri.authority().expect("absolute URL").to_string();
    let stream = match local {
        None => tokio::net::TcpStream::connect(&authority).await,
        Some(ip) => {
            let peer = tokio::net::lookup_host(&authority)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| panic!("cannot resolve {authority}"));
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(std::net::SocketAddr::new(ip, 0))
                .unwrap_or_else(|e| panic!("cannot bind {ip}: {e}"));
            socket.connect(peer).await
        }
    }
    .unwrap_or_else(|e| panic!("cannot connect to {authority}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        bytes,
    }
}

impl Stack {
    pub async fn start(options: Options) -> Stack {
        let db = fresh_database().await;
        let env = local_env();
        let get = |k: &str| env.get(k).cloned();
        let endpoint = get("AWS_ENDPOINT_URL")
            .expect("AWS_ENDPOINT_URL in localstack/local.env: run localstack/up");
        let aws = storage::aws::sdk_config(get).await;

        // A bucket and queues of our own, wired like localstack/up wires the shared ones.
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let bucket = format!("e2e-{id}");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(true)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&aws);
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a bucket in LocalStack at {endpoint} ({e:?}); run localstack/up"
                )
            });
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("e2e-{id}-dlq"))
            .send()
            .await
            .expect("create DLQ")
            .queue_url
            .expect("DLQ URL");
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("e2e-{id}"))
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string(),
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue URL");
        let arn = queue_arn(&sqs, &queue_url).await;
        s3.put_bucket_notification_configuration()
            .bucket(&bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(arn)
                            .events(Event::from("s3:ObjectCreated:*"))
                            .filter(
                                NotificationConfigurationFilter::builder()
                                    .key(
                                        S3KeyFilter::builder()
                                            .filter_rules(
                                                FilterRule::builder()
                                                    .name(FilterRuleName::Prefix)
                                                    .value("uploads/")
                                                    .build(),
                                            )
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build()
                            .expect("queue configuration"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("bucket notification");

        let store = Arc::new(S3Store::new(&aws, &bucket));
        let queue = Arc::new(SqsQueue::new(&aws, &queue_url));
        let dlq = Arc::new(SqsQueue::new(&aws, &dlq_url));
        let settings = db.settings(&[
            ("BUCKET_NAME", &bucket),
            ("UPLOAD_RATE_LIMIT_REQUESTS", "50"),
        ]);
        let mut analyzer_config = analyzer::Config::from_settings(&settings);
        if let Some(ttl) = options.report_ttl {
            analyzer_config.report_ttl = ttl;
        }
        let auth = auth_api::State::with_pool(settings, &db.api_keys(), db.app_pool.clone());
        let mut tasks = tasks_api::State::new(auth, store.clone(), queue.clone());
        if let Some(ttl) = options.upload_url_ttl {
            tasks.config.upload_url_ttl = ttl;
        }
        if let Some(threshold) = options.multipart_threshold_bytes {
            tasks.config.multipart_threshold_bytes = threshold;
        }
        let analyzer = Arc::new(
            analyzer::State::new(db.app_pool.clone(), store.clone(), analyzer_config)
                .with_requeue(queue.clone()),
        );
        let mut janitor_config = janitor::Config::default();
        if let Some(stale) = options.janitor_stale_after {
            janitor_config.stale_after = stale;
        }
        if let Some(age) = options.janitor_orphan_upload_after {
            janitor_config.orphan_upload_after = age;
        }
        let janitor = Arc::new(janitor::State {
            pool: db.app_pool.clone(),
            store: store.clone(),
            dlq: Some(dlq.clone()),
            config: janitor_config,
        });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(local_gateway::serve(listener, Arc::new(tasks)));
        if !options.no_poller {
            tokio::spawn(local_gateway::pipeline::poll_queue(
                queue.clone(),
                analyzer.clone(),
                2,
            ));
        }
        db::upgrade(&db.pool, Some(PASSWORD))
            .await
            .expect("admin account");
        Stack {
            addr,
            db,
            store,
            queue,
            dlq,
            analyzer,
            janitor,
            bucket,
        }
    }

    /// A stack whose queue nobody polls: the test delivers the messages itself.
    pub async fn without_poller() -> Stack {
        Stack::start(Options {
            no_poller: true,
            ..Options::default()
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        let bytes = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(&v).unwrap()
            }
            None => Vec::new(),
        };
        http(method, &self.url(path), &headers, bytes).await
    }

    pub async fn login(&self, username: &str) -> String {
        let r = http(
            "POST",
            &self.url("/api/token"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"username": username, "password": PASSWORD})).unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "login of {username}: {}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// Registers `username` over HTTP, has the admin approve it, and logs it in.
    pub async fn user(&self, username: &str) -> String {
        let r = http(
            "POST",
            &self.url("/api/register"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            }))
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 201, "register {username}: {}", r.text());
        let id = r.json()["id"].as_str().expect("user id").to_string();
        let admin = self.login("admin").await;
        let r = self
            .call(
                "PUT",
                &format!("/api/admin/users/{id}/approve"),
                &admin,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "approve {username}: {}", r.text());
        self.login(username).await
    }

    /// `POST /api/uploads`; panics unless 201.
    pub async fn new_upload(&self, token: &str, filename: &str, size: usize) -> Value {
        let r = self
            .call(
                "POST",
                "/api/uploads",
                token,
                Some(json!({"filename": filename, "size_bytes": size})),
            )
            .await;
        assert_eq!(r.status, 201, "upload of {filename}: {}", r.text());
        r.json()
    }

    /// PUTs `body` to the presigned URL with the headers the API said, optionally changed.
    pub async fn put(upload: &Value, body: Vec<u8>, content_type: Option<&str>) -> Answer {
        let url = upload["upload_url"].as_str().expect("upload_url");
        let ct = content_type.map(str::to_string).unwrap_or_else(|| {
            upload["headers"]["Content-Type"]
                .as_str()
                .unwrap()
                .to_string()
        });
        http("PUT", url, &[("content-type", &ct)], body).await
    }

    /// Uploads a capture through the API and S3; returns the task id.
    pub async fn upload(&self, token: &str, filename: &str, body: Vec<u8>) -> String {
        let up = self.new_upload(token, filename, body.len()).await;
        let r = Self::put(&up, body, None).await;
        assert_eq!(r.status, 200, "PUT to S3: {}", r.text());
        up["task_id"].as_str().unwrap().to_string()
    }

    /// Polls `GET /api/progress/{id}` until the task is completed or failed.
    pub async fn wait_done(&self, token: &str, task: &str) -> Value {
        let deadline = tokio::time::Instant::now() + ANALYSIS_TIMEOUT;
        loop {
            let r = self
                .call("GET", &format!("/api/progress/{task}"), token, None)
                .await;
            assert_eq!(r.status, 200, "progress: {}", r.text());
            let v = r.json();
            if matches!(v["status"].as_str(), Some("completed" | "failed")) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {task} not finished in time: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Follows the report redirect of `GET /api/reports/{id}/{format}` to S3.
    pub async fn report(&self, token: &str, task: &str, format: &str) -> Answer {
        let r = self
            .call("GET", &format!("/api/reports/{task}/{format}"), token, None)
            .await;
        assert_eq!(r.status, 303, "report redirect: {}", r.text());
        let location = r.header("location").expect("Location").to_string();
        http("GET", &location, &[], Vec::new()).await
    }

    pub async fn task_row(&self, task: &str) -> db::tasks::Task {
        let client = self.db.pool.get().await.unwrap();
        db::tasks::find(&client, task.parse().unwrap())
            .await
            .unwrap()
            .expect("task row")
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        use storage::ObjectStore;
        self.store.exists(key).await.expect("HeadObject")
    }

    /// This stack's bucket through another S3 endpoint (e.g. a [`CuttingProxy`] before
    /// LocalStack), with the same credentials.
    pub async fn store_via(&self, endpoint: &str) -> S3Store {
        let env = local_env();
        let aws = storage::aws::sdk_config(|k: &str| match k {
            "AWS_ENDPOINT_URL" => Some(endpoint.to_string()),
            _ => env.get(k).cloned(),
        })
        .await;
        S3Store::new(&aws, &self.bucket)
    }

    /// The next S3 notification for `key` from this stack's queue (skipping the test event).
    pub async fn next_notification(&self) -> storage::QueueMessage {
        use storage::Queue;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            for m in self
                .queue
                .receive(10, Duration::from_secs(2))
                .await
                .unwrap()
            {
                self.queue.delete(&m.receipt_handle).await.unwrap();
                if !m.body.contains("s3:TestEvent") {
                    return m;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no S3 notification arrived"
            );
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a: HashMap<QueueAttributeName, String>| {
            a.get(&QueueAttributeName::QueueArn).cloned()
        })
        .expect("queue ARN")
}

/// A TCP proxy to LocalStack that cuts one connection: the first whose bytes towards the client
/// go past `cut_after` is closed there, in the middle of a response. Every other connection is
/// passed through whole.
pub struct CuttingProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    pub async fn start(cut_after: usize) -> CuttingProxy {
        let endpoint = local_env()
            .get("AWS_ENDPOINT_URL")
            .cloned()
            .expect("AWS_ENDPOINT_URL in localstack/local.env: run localstack/up");
        let upstream = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(AtomicUsize::new(0));
        let counted = cuts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream)
                    .await
                    .unwrap_or_else(|e| panic!("LocalStack at {upstream}: {e}"));
                tokio::spawn(pass(client, server, cut_after, counted.clone()));
            }
        });
        CuttingProxy { addr, cuts }
    }

    /// The endpoint URL to give the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections cut so far (0 or 1).
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn pass(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    cut_after: usize,
    cuts: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    });
    let mut sent = 0;
    let mut buf = vec![0; 16 << 10];
    loop {
        let n = match from_server.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent + n > cut_after
            && cuts
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // Up to the cut, then the connection closes under the client.
            let _ = to_client.write_all(&buf[..cut_after - sent]).await;
            break;
        }
        if to_client.write_all(&buf[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    requests.abort();
}
