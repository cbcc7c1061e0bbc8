//! The pipeline end to end: HTTP API, presigned S3 PUT, S3 → SQS notification, analyzer,
//! reports, janitor, against the real Postgres and LocalStack (each test its own database,
//! bucket and queues).

mod multipart;

use aws_lambda_events::event::sqs::SqsEvent;
use e2e::{capture, oracle_packets, CuttingProxy, Options, Stack};
use serde_json::json;
use std::time::Duration;
use storage::Queue;

/// A medium real capture (956 frames, pcapng) from the shared set.
const CAPTURE: &str = "cs_http_espn.pcapng";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_capture_goes_from_upload_to_reports_with_tsharks_packet_count() {
    let stack = Stack::start(Options::default()).await;
    let alice = stack.user("alice").await;

    let task = stack.upload(&alice, CAPTURE, capture(CAPTURE)).await;
    let progress = stack.wait_done(&alice, &task).await;

    assert_eq!(progress["status"], "completed", "{progress}");
    assert_eq!(progress["progress_percent"], 100);
    let phases: Vec<&str> = progress["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["phase"].as_str())
        .collect();
    assert_eq!(phases.last(), Some(&"completed"), "{phases:?}");
    let report = stack.report(&alice, &task, "json").await;
    assert_eq!(report.status, 200);
    assert_eq!(
        report.json()["metadata"]["total_packets"],
        oracle_packets(CAPTURE)
    );
    let html = stack.report(&alice, &task, "html").await;
    assert_eq!(html.status, 200);
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(html.text().contains("<html"));
    let status = stack
        .call("GET", &format!("/api/status/{task}"), &alice, None)
        .await
        .json();
    assert_eq!(status["total_packets"], oracle_packets(CAPTURE));
    assert!(status["health_score"].is_number(), "{status}");
    // The upload is deleted once analysed; the reports stay.
    let row = stack.task_row(&task).await;
    assert!(!stack.object_exists(row.s3_key.as_deref().unwrap()).await);
    assert!(
        stack
            .object_exists(row.report_json_key.as_deref().unwrap())
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_a_put_of_another_size_or_type_or_after_expiry_and_the_api_refuses_oversize() {
    let stack = Stack::start(Options {
        upload_url_ttl: Some(Duration::from_secs(1)),
        no_poller: true,
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let body = capture(CAPTURE);

    let up = stack.new_upload(&alice, CAPTURE, body.len()).await;
    let mut larger = body.clone();
    larger.extend_from_slice(&[0; 100]);
    assert_eq!(Stack::put(&up, larger, None).await.status, 403);
    assert_eq!(
        Stack::put(&up, body.clone(), Some("text/plain"))
            .await
            .status,
        403
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(Stack::put(&up, body.clone(), None).await.status, 403);

    let r = stack
        .call(
            "POST",
            "/api/uploads",
            &alice,
            Some(json!({"filename": "big.pcap", "size_bytes": 501u64 * 1024 * 1024})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("500 MB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_named_pcap_fails_clearly_and_a_truncated_capture_completes_with_a_warning() {
    let stack = Stack::start(Options::default()).await;
    let alice = stack.user("alice").await;

    let text = stack
        .upload(
            &alice,
            "notes.pcap",
            b"this is not a capture, just text\n".to_vec(),
        )
        .await;
    let full = capture(CAPTURE);
    // The last block is 100 bytes long: cut inside it.
    let cut = full[..full.len() - 37].to_vec();
    let truncated = stack.upload(&alice, "cut.pcapng", cut).await;

    let failed = stack.wait_done(&alice, &text).await;
    assert_eq!(failed["status"], "failed");
    let message = failed["error_message"].as_str().unwrap();
    assert!(message.contains("not a packet capture"), "{message}");
    assert_eq!(stack.task_row(&text).await.attempts, 1, "not retried");

    let done = stack.wait_done(&alice, &truncated).await;
    assert_eq!(done["status"], "completed", "{done}");
    let report = stack.report(&alice, &truncated, "json").await.json();
    let warnings = report["metadata"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("cut short")),
        "{warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyzer_reads_a_large_object_in_ranged_parts_in_order_and_fails_if_it_is_replaced_meanwhile(
) {
    use std::io::Read;
    use storage::reader::ChannelReader;
    use storage::{ObjectStore, StorageError};

    let stack = Stack::without_poller().await;
    // Parts of 64 KiB through a budget of four: 17 ranged GETs, up to four at once.
    let store = (*stack.store).clone().with_part_bytes(64 << 10);
    let body = cyclic_bytes((1 << 20) + 7);
    let key = "uploads/ranged.bin";
    store
        .put(key, body.clone(), "application/octet-stream")
        .await
        .unwrap();

    let stream = store.open(key, 256 << 10).await.unwrap();
    assert_eq!(stream.size_bytes, body.len() as u64);
    let read = read_all(stream).await.expect("the whole object");
    assert_eq!(read.len(), body.len());
    assert!(read == body, "the parts came back out of order");

    // With room for two parts, the third is asked for only after the reader is done with the
    // first: replace the object in between, and that part's GET finds another version.
    let stream = store.open(key, 128 << 10).await.unwrap();
    let mut reader = ChannelReader::new(stream);
    let mut reader = tokio::task::spawn_blocking(move || {
        let mut first = vec![0; 1000];
        reader.read_exact(&mut first).map(|_| reader)
    })
    .await
    .unwrap()
    .expect("the first bytes");
    store
        .put(key, vec![7; body.len()], "application/octet-stream")
        .await
        .unwrap();
    let rest = tokio::task::spawn_blocking(move || reader.read_to_end(&mut Vec::new()))
        .await
        .unwrap();
    let err = rest.expect_err("a read across two versions of the object");
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<StorageError>());
    assert!(
        matches!(cause, Some(StorageError::Service { message, .. }) if message.contains("PreconditionFailed")),
        "{err:?}"
    );

    assert!(matches!(
        store.open("uploads/missing.bin", 1 << 20).await,
        Err(StorageError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_whose_body_breaks_off_is_fetched_again_and_the_read_goes_on() {
    use storage::ObjectStore;

    let stack = Stack::without_poller().await;
    let body = cyclic_bytes((1 << 20) + 7);
    let key = "uploads/cut.bin";
    stack
        .store
        .put(key, body.clone(), "application/octet-stream")
        .await
        .unwrap();

    // Responses of 64 KiB and a few hundred bytes of headers: 100,000 bytes into a connection
    // is in the middle of the body of its second response.
    let proxy = CuttingProxy::start(100_000).await;
    let store = stack
        .store_via(&proxy.endpoint())
        .await
        .with_part_bytes(64 << 10);
    let stream = store.open(key, 256 << 10).await.unwrap();
    let read = read_all(stream)
        .await
        .expect("the whole object, the cut range fetched again");
    assert_eq!(proxy.cuts(), 1, "no connection was cut");
    assert_eq!(read.len(), body.len());
    assert!(read == body, "a part came back wrong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_s3_event_delivered_twice_and_concurrently_makes_one_report_and_one_completion() {
    let stack = Stack::without_poller().await;
    let alice = stack.user("alice").await;
    let task = stack.upload(&alice, CAPTURE, capture(CAPTURE)).await;
    let message = stack.next_notification().await;
    let event = sqs_event(&message);

    // Two concurrent deliveries, then a late third one; plus the same body through the queue.
    let (a, b) = tokio::join!(
        analyzer::handle(&stack.analyzer, event.clone()),
        analyzer::handle(&stack.analyzer, event.clone())
    );
    let c = analyzer::handle(&stack.analyzer, event.clone()).await;
    stack.queue.send(&message.body).await.unwrap();
    tokio::spawn(local_gateway::pipeline::poll_queue(
        stack.queue.clone(),
        stack.analyzer.clone(),
        2,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    for r in [&a, &b, &c] {
        assert!(r.batch_item_failures.is_empty());
    }
    let row = stack.task_row(&task).await;
    assert_eq!(row.status, db::tasks::Status::Completed);
    assert_eq!(row.attempts, 1, "only one delivery claimed the task");
    let client = stack.db.pool.get().await.unwrap();
    let completions: i64 = client
        .query_one(
            "SELECT count(*) FROM progress_snapshots WHERE task_id = $1 AND phase = 'completed'",
            &[&row.task_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(completions, 1);
    let depth = stack.queue.depth().await.unwrap();
    assert_eq!(
        depth.visible + depth.in_flight,
        0,
        "the duplicate was consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_task_is_404_everywhere_and_the_admin_sees_both() {
    let stack = Stack::start(Options::default()).await;
    let alice = stack.user("alice").await;
    let bob = stack.user("bob").await;
    let a_task = stack.upload(&alice, CAPTURE, capture(CAPTURE)).await;
    let b_task = stack.upload(&bob, "b.pcapng", capture(CAPTURE)).await;
    stack.wait_done(&alice, &a_task).await;
    stack.wait_done(&bob, &b_task).await;

    for (method, path) in [
        ("GET", format!("/api/status/{a_task}")),
        ("GET", format!("/api/progress/{a_task}")),
        ("GET", format!("/api/reports/{a_task}/json")),
        ("GET", format!("/api/reports/{a_task}/html")),
        ("DELETE", format!("/api/reports/{a_task}")),
    ] {
        let r = stack.call(method, &path, &bob, None).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["error"], "not_found");
    }
    let bobs = stack.call("GET", "/api/tasks", &bob, None).await.json();
    assert_eq!(bobs["total"], 1);

    let admin = stack.login("admin").await;
    let all = stack.call("GET", "/api/history", &admin, None).await.json();
    assert_eq!(all["total"], 2, "{all}");
    let owners: Vec<&str> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["owner_username"].as_str())
        .collect();
    assert!(
        owners.contains(&"alice") && owners.contains(&"bob"),
        "{owners:?}"
    );
    let r = stack
        .call("GET", &format!("/api/status/{a_task}"), &admin, None)
        .await;
    assert_eq!(r.status, 200);

    // The owner may delete: objects go, the task is expired.
    let r = stack
        .call("DELETE", &format!("/api/reports/{a_task}"), &alice, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = stack.task_row(&a_task).await;
    assert_eq!(row.status, db::tasks::Status::Expired);
    assert!(
        !stack
            .object_exists(row.report_html_key.as_deref().unwrap())
            .await
    );
    let queue = stack.call("GET", "/api/queue/status", &alice, None).await;
    assert_eq!(queue.status, 200);
    assert_eq!(queue.json()["scope"], "user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_expires_tasks_past_their_ttl_with_their_objects_and_fails_stalled_and_dead_lettered_ones(
) {
    let stack = Stack::start(Options {
        report_ttl: Some(Duration::from_secs(3)),
        janitor_stale_after: Some(Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let done = stack.upload(&alice, CAPTURE, capture(CAPTURE)).await;
    assert_eq!(stack.wait_done(&alice, &done).await["status"], "completed");
    let row = stack.task_row(&done).await;
    let (html, json_key) = (row.report_html_key.unwrap(), row.report_json_key.unwrap());
    assert!(stack.object_exists(&html).await);

    // A task whose analyzer died: claimed, then silence.
    let stalled = stack.new_upload(&alice, "stalled.pcap", 10).await;
    let stalled_key = stalled["s3_key"].as_str().unwrap();
    {
        let client = stack.db.pool.get().await.unwrap();
        db::tasks::claim(&client, stalled_key, None, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("claimed");
    }
    // A task whose deliveries all failed: its notification sits in the DLQ.
    let dead = stack.new_upload(&alice, "dead.pcap", 10).await;
    let dead_key = dead["s3_key"].as_str().unwrap();
    stack
        .dlq
        .send(
            &json!({"Records": [{"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": stack.bucket}, "object": {"key": dead_key, "size": 10}}}]})
            .to_string(),
        )
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let report = janitor::run_once(&stack.janitor).await.unwrap();

    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(report.stalled_failed, 1, "{report:?}");
    assert_eq!(report.dead_letters, 1, "{report:?}");
    assert_eq!(
        stack.task_row(&done).await.status,
        db::tasks::Status::Expired
    );
    assert!(!stack.object_exists(&html).await && !stack.object_exists(&json_key).await);
    let stalled = stack.task_row(stalled["task_id"].as_str().unwrap()).await;
    assert_eq!(stalled.status, db::tasks::Status::Failed);
    assert!(stalled.error_message.unwrap().contains("heartbeat"));
    let dead = stack.task_row(dead["task_id"].as_str().unwrap()).await;
    assert_eq!(dead.status, db::tasks::Status::Failed);
    let r = stack
        .call("GET", &format!("/api/reports/{done}/html"), &alice, None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyzer_binary_under_cargo_lambda_watch_completes_the_task_of_an_invoked_s3_fixture()
{
    // Fails loudly, before any setup, when cargo-lambda is not installed.
    let cargo_lambda = e2e::lambda::cargo_lambda();
    let stack = Stack::without_poller().await;
    let alice = stack.user("alice").await;
    let body = capture(CAPTURE);
    let size = body.len();
    let task = stack.upload(&alice, CAPTURE, body).await;
    let key = stack.task_row(&task).await.s3_key.expect("upload key");
    let event = e2e::lambda::s3_put_event(&stack.bucket, &key, size);
    let event_file = std::env::temp_dir().join(format!("e2e-s3-put-{task}.json"));
    std::fs::write(&event_file, event.to_string()).unwrap();
    // The binary reads its settings from the environment: local.env, pointed at this test's
    // database and bucket.
    let mut env: Vec<(String, String)> = db::test_support::local_env().into_iter().collect();
    env.extend([
        ("DATABASE_URL".to_string(), stack.db.url.clone()),
        ("BUCKET_NAME".to_string(), stack.bucket.clone()),
        ("LOG_FORMAT".to_string(), "text".to_string()),
    ]);

    let (answer, tree) = tokio::task::spawn_blocking(move || {
        let watch = e2e::lambda::Watch::start(&cargo_lambda, &env);
        let answer = watch.invoke("analyzer", &event_file);
        let tree = watch.process_tree();
        drop(watch);
        let _ = std::fs::remove_file(&event_file);
        (answer, tree)
    })
    .await
    .expect("watch and invoke");

    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "the SqsBatchResponse lists no failed message"
    );
    let row = stack.task_row(&task).await;
    assert_eq!(row.status, db::tasks::Status::Completed, "{row:?}");
    assert_eq!(row.total_packets, Some(oracle_packets(CAPTURE) as i64));
    assert!(
        stack
            .object_exists(row.report_json_key.as_deref().unwrap())
            .await
    );
    let orphans: Vec<u32> = tree
        .into_iter()
        .filter(|p| e2e::lambda::alive(*p))
        .collect();
    assert!(
        orphans.is_empty(),
        "processes of cargo lambda watch still running: {orphans:?}"
    );
}

/// `len` bytes cycling through a prime period: a part out of place or cut short shows.
/// The SQS event Lambda would deliver for `message`.
fn sqs_event(message: &storage::QueueMessage) -> SqsEvent {
    serde_json::from_value(json!({"Records": [{
        "messageId": message.message_id, "receiptHandle": "r", "body": message.body,
        "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}
    }]}))
    .expect("SQS event")
}

fn cyclic_bytes(len: u32) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads a whole object stream, as the analyzer's engine does (on a blocking thread).
async fn read_all(stream: storage::ObjectStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        storage::reader::ChannelReader::new(stream)
            .read_to_end(&mut out)
            .map(|_| out)
    })
    .await
    .unwrap()
}

/// 40 wrong passwords at once against one account from one address: the count and the decision
/// are one statement, so exactly the limit's worth are evaluated. The owner, from another
/// address, still signs in (slowed, never refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_are_cut_at_the_limit_and_the_owner_still_signs_in_from_elsewhere() {
    let stack = Stack::without_poller().await;
    let _ = stack.user("alice").await;
    let url = stack.url("/api/token");
    let guess =
        serde_json::to_vec(&json!({"username": "alice", "password": "wrong-guess"})).expect("json");
    let guesses = (0..40).map(|_| {
        let (url, body) = (url.clone(), guess.clone());
        tokio::spawn(async move {
            e2e::http("POST", &url, &[("content-type", "application/json")], body)
                .await
                .status
        })
    });
    let mut statuses = Vec::new();
    for g in guesses.collect::<Vec<_>>() {
        statuses.push(g.await.expect("guess"));
    }
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((evaluated, refused), (5, 35), "{statuses:?}");

    let right =
        serde_json::to_vec(&json!({"username": "alice", "password": e2e::PASSWORD})).expect("json");
    let from_elsewhere = e2e::http_from(
        Some("127.0.0.2".parse().expect("address")),
        "POST",
        &url,
        &[("content-type", "application/json")],
        right.clone(),
    )
    .await;
    assert_eq!(from_elsewhere.status, 200, "{}", from_elsewhere.text());
    let from_the_guesser =
        e2e::http("POST", &url, &[("content-type", "application/json")], right).await;
    assert_eq!(
        from_the_guesser.status, 429,
        "the guessing address stays refused"
    );
}

/// Login CSRF: a form posted from another site must not sign the browser in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_form_posted_from_another_site_is_refused_without_a_cookie() {
    let stack = Stack::without_poller().await;
    let _ = stack.user("alice").await;
    let form = format!("username=alice&password={}", e2e::PASSWORD).into_bytes();
    let url = stack.url("/api/token");
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let evil = e2e::http(
        "POST",
        &url,
        &[
            form_type,
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        form.clone(),
    )
    .await;
    assert_eq!(evil.status, 403, "{}", evil.text());
    assert_eq!(evil.json()["error"], "cross_site_request");
    assert!(evil.header("set-cookie").is_none());
    // The UI's own origin, and a script that sends no Origin, sign in.
    let own = format!("http://{}", stack.addr);
    for headers in [vec![form_type, ("origin", own.as_str())], vec![form_type]] {
        let r = e2e::http("POST", &url, &headers, form.clone()).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
        assert!(r.header("set-cookie").is_some());
    }
}

/// A worker whose claim was taken over (its heartbeat went stale) writes nothing: its
/// completion, failure, release and progress change no row, and its report keys are not the
/// winner's, so its clean-up deletes nothing of the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_workers_completion_changes_nothing() {
    let stack = Stack::without_poller().await;
    let alice = stack.user("alice").await;
    let task = stack.upload(&alice, CAPTURE, capture(CAPTURE)).await;
    let message = stack.next_notification().await;
    let key = stack.task_row(&task).await.s3_key.expect("key");
    let client = stack.db.pool.get().await.expect("db");
    let stale = db::tasks::claim(&client, &key, None, Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("claimed");
    // Its heartbeat stops: the analyzer takes the task over.
    client
        .execute(
            "UPDATE tasks SET last_heartbeat = now() - interval '1 hour' WHERE s3_key = $1",
            &[&key],
        )
        .await
        .expect("stall");
    let event = sqs_event(&message);
    let r = analyzer::handle(&stack.analyzer, event).await;
    assert!(r.batch_item_failures.is_empty());
    let winner = stack.task_row(&task).await;
    assert_eq!(winner.status, db::tasks::Status::Completed);
    assert_eq!(winner.attempts, stale.attempts + 1);

    let summary = db::tasks::Summary {
        total_packets: 1,
        health_score: Some(1.0),
        capture_duration: 1.0,
        report_html_key: "stale.html".into(),
        report_json_key: "stale.json".into(),
        keep_for: Duration::from_secs(60),
    };
    let claim = stale.claim();
    assert!(!db::tasks::complete(&client, claim, &summary)
        .await
        .expect("complete"));
    assert!(!db::tasks::fail_claimed(&client, claim, "stale")
        .await
        .expect("fail"));
    assert!(!db::tasks::release(&client, claim, "stale")
        .await
        .expect("release"));
    assert!(!db::tasks::heartbeat(&client, claim)
        .await
        .expect("heartbeat"));
    let after = stack.task_row(&task).await;
    assert_eq!(after.status, db::tasks::Status::Completed);
    assert_eq!(after.total_packets, winner.total_packets);
    assert_eq!(after.report_json_key, winner.report_json_key);
    let (_, stale_json) = analyzer::report_keys(&stale);
    assert_ne!(Some(stale_json), winner.report_json_key.clone());
    assert!(
        stack
            .object_exists(winner.report_json_key.as_deref().expect("key"))
            .await
    );
}

/// Deleting a pending task leaves its presigned URL valid until it expires; what is put there
/// afterwards is deleted on arrival, stored for and counted against nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_deleted_pending_tasks_url_leaves_no_object_behind() {
    let stack = Stack::start(Options::default()).await;
    let alice = stack.user("alice").await;
    let body = capture(CAPTURE);
    let up = stack.new_upload(&alice, CAPTURE, body.len()).await;
    let task = up["task_id"].as_str().expect("task").to_string();
    let r = stack
        .call("DELETE", &format!("/api/reports/{task}"), &alice, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(Stack::put(&up, body, None).await.status, 200);
    let key = up["s3_key"].as_str().expect("key");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stack.object_exists(key).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the object of a deleted task is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = stack.task_row(&task).await;
    assert_eq!(row.status, db::tasks::Status::Expired);
    assert_eq!(row.attempts, 0, "never analysed");
}
