//! Big captures go up as S3 multipart uploads: a URL per part with its size signed, a listing
//! to resume from, completion against the declared size, cancelling, and the janitor's sweep.

use e2e::{http, Answer, Options, Stack};
use serde_json::{json, Value};
use std::time::Duration;
use storage::ObjectStore;

const MIB: u64 = 1024 * 1024;
/// A shipped scenario (classic pcap, little-endian, 1.3 MB); its records are repeated into a
/// capture of three parts.
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../engine/tests/scenarios/healthy_bulk.pcap"
);
/// Classic pcap: a 24-byte file header, then records with a 16-byte header whose bytes 8..12
/// are the captured length.
const PCAP_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// A real capture of at least `min_bytes`: the sample's records over and over; and its packets.
fn big_capture(min_bytes: u64) -> (Vec<u8>, u64) {
    let sample = std::fs::read(SAMPLE).expect("the sample capture");
    let records = &sample[PCAP_HEADER..];
    let mut per_copy = 0;
    let mut at = 0;
    while at + RECORD_HEADER <= records.len() {
        let len = u32::from_le_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        at += RECORD_HEADER + len;
        per_copy += 1;
    }
    assert_eq!(at, records.len(), "the sample ends on a record");
    let mut body = sample[..PCAP_HEADER].to_vec();
    let mut packets = 0;
    while (body.len() as u64) < min_bytes {
        body.extend_from_slice(records);
        packets += per_copy;
    }
    (body, packets)
}

/// A stack whose uploads above 1 MiB are multipart.
async fn stack(options: Options) -> Stack {
    Stack::start(Options {
        multipart_threshold_bytes: Some(MIB),
        ..options
    })
    .await
}

/// PUTs one part to its presigned URL with nothing but its Content-Length, as a browser does.
async fn put_part(part: &Value, body: &[u8]) -> Answer {
    http(
        "PUT",
        part["url"].as_str().expect("part url"),
        &[],
        body.to_vec(),
    )
    .await
}

/// The bytes of `part` (numbered from 1) in `body`, parts being `part_size` long.
fn slice(body: &[u8], part: &Value, part_size: u64) -> Vec<u8> {
    let n = part["part_number"].as_u64().unwrap();
    let start = ((n - 1) * part_size) as usize;
    let end = start + part["size"].as_u64().unwrap() as usize;
    body[start..end].to_vec()
}

/// Uploads `parts` of `body`; returns each part's number and the ETag S3 answered.
async fn put_parts(body: &[u8], parts: &[Value], part_size: u64) -> Vec<Value> {
    let mut done = Vec::new();
    for part in parts {
        let r = put_part(part, &slice(body, part, part_size)).await;
        assert_eq!(r.status, 200, "part PUT: {}", r.text());
        done.push(json!({
            "part_number": part["part_number"],
            "etag": r.header("etag").expect("ETag of the part"),
        }));
    }
    done
}

async fn complete(stack: &Stack, token: &str, task: &str, parts: Vec<Value>) -> Answer {
    stack
        .call(
            "POST",
            &format!("/api/uploads/{task}/complete"),
            token,
            Some(json!({ "parts": parts })),
        )
        .await
}

fn task_of(up: &Value) -> String {
    up["task_id"].as_str().unwrap().to_string()
}

fn parts_of(up: &Value) -> Vec<Value> {
    up["parts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_uploaded_in_parts_is_analysed_to_completed() {
    let stack = stack(Options::default()).await;
    let alice = stack.user("alice").await;
    let (body, packets) = big_capture(17 * MIB);

    let up = stack.new_upload(&alice, "big.pcap", body.len()).await;
    let part_size = up["part_size"].as_u64().unwrap();
    let parts = parts_of(&up);
    let done = put_parts(&body, &parts, part_size).await;
    let r = complete(&stack, &alice, &task_of(&up), done).await;
    let progress = stack.wait_done(&alice, &task_of(&up)).await;
    let listing_after = stack
        .call(
            "GET",
            &format!("/api/uploads/{}", task_of(&up)),
            &alice,
            None,
        )
        .await;

    assert_eq!(up["method"], "multipart");
    assert_eq!(part_size, 8 * MIB);
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts
            .iter()
            .map(|p| p["size"].as_u64().unwrap())
            .sum::<u64>(),
        body.len() as u64
    );
    assert_eq!(r.status, 200, "complete: {}", r.text());
    assert_eq!(progress["status"], "completed", "{progress}");
    assert_eq!(listing_after.status, 409, "{}", listing_after.text());
    let report = stack.report(&alice, &task_of(&up), "json").await;
    assert_eq!(report.json()["metadata"]["total_packets"], packets);
    // A small file still gets the single presigned PUT.
    let small = stack.new_upload(&alice, "small.pcap", 1000).await;
    assert_eq!(small["method"], "PUT");
    assert!(small["upload_url"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_of_another_size_than_signed_is_refused_by_s3() {
    let stack = stack(Options {
        no_poller: true,
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let up = stack
        .new_upload(&alice, "big.pcap", (17 * MIB) as usize)
        .await;
    let first = &parts_of(&up)[0];
    let size = first["size"].as_u64().unwrap() as usize;

    let larger = put_part(first, &vec![0; size + 100]).await;
    let smaller = put_part(first, &vec![0; size - 100]).await;
    let listing = stack
        .call(
            "GET",
            &format!("/api/uploads/{}", task_of(&up)),
            &alice,
            None,
        )
        .await;

    // The part's Content-Length is a signed header: another length is another signature.
    assert!(first["url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-SignedHeaders=content-length%3Bhost"));
    for r in [&larger, &smaller] {
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("SignatureDoesNotMatch"), "{}", r.text());
    }
    assert_eq!(listing.status, 200, "{}", listing.text());
    assert_eq!(listing.json()["parts"], json!([]));
    assert_eq!(listing.json()["missing"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_from_its_listing_with_fresh_urls() {
    let stack = stack(Options {
        upload_url_ttl: Some(Duration::from_secs(4)),
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let (body, packets) = big_capture(17 * MIB);
    let up = stack.new_upload(&alice, "big.pcap", body.len()).await;
    let task = task_of(&up);
    let part_size = up["part_size"].as_u64().unwrap();
    let parts = parts_of(&up);
    let first = put_parts(&body, &parts[..1], part_size).await;

    // The connection is gone for longer than the URLs live; an early completion is refused.
    let early = complete(&stack, &alice, &task, first.clone()).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let stale = put_part(&parts[1], &slice(&body, &parts[1], part_size)).await;
    let listing = stack
        .call("GET", &format!("/api/uploads/{task}"), &alice, None)
        .await
        .json();
    let missing = listing["missing"].as_array().unwrap().clone();
    let rest = put_parts(&body, &missing, part_size).await;
    let mut all: Vec<Value> = listing["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!({"part_number": p["part_number"], "etag": p["etag"]}))
        .collect();
    all.extend(rest);
    let r = complete(&stack, &alice, &task, all).await;
    let progress = stack.wait_done(&alice, &task).await;

    assert_eq!(early.status, 409, "{}", early.text());
    assert!(early.json()["message"].as_str().unwrap().contains("2, 3"));
    assert_eq!(stale.status, 403, "an expired part URL: {}", stale.text());
    assert_eq!(listing["parts"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["parts"][0]["part_number"], 1);
    assert_eq!(listing["parts"][0]["size"], part_size);
    assert_eq!(
        missing
            .iter()
            .map(|p| p["part_number"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(r.status, 200, "complete: {}", r.text());
    assert_eq!(progress["status"], "completed", "{progress}");
    let report = stack.report(&alice, &task, "json").await;
    assert_eq!(report.json()["metadata"]["total_packets"], packets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_aborts_uploads_of_tasks_no_longer_pending_and_uploads_without_a_task() {
    let stack = stack(Options {
        janitor_orphan_upload_after: Some(Duration::ZERO),
        no_poller: true,
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let size = (17 * MIB) as usize;
    let failed = stack.new_upload(&alice, "failed.pcap", size).await;
    put_parts(&vec![0; size], &parts_of(&failed)[..1], 8 * MIB).await;
    let expired = stack.new_upload(&alice, "expired.pcap", size).await;
    let live = stack.new_upload(&alice, "live.pcap", size).await;
    {
        let client = stack.db.pool.get().await.unwrap();
        db::tasks::fail(&client, task_of(&failed).parse().unwrap(), "gone")
            .await
            .unwrap();
        let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        db::tasks::set_times(
            &client,
            task_of(&expired).parse().unwrap(),
            Some(past),
            None,
        )
        .await
        .unwrap();
    }
    let orphan_key = format!("uploads/{}/{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    stack
        .store
        .create_multipart(&orphan_key, "application/octet-stream")
        .await
        .unwrap();

    let report = janitor::run_once(&stack.janitor).await.unwrap();
    let left: Vec<String> = stack
        .store
        .list_multiparts("uploads/")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.key)
        .collect();

    assert_eq!(report.expired, 1, "{report:?}");
    // The failed task's and the orphan's by the sweep; the expired task's as it expired.
    assert_eq!(report.uploads_aborted, 2, "{report:?}");
    assert_eq!(left, [live["s3_key"].as_str().unwrap()]);
    let again = janitor::run_once(&stack.janitor).await.unwrap();
    assert_eq!(again.uploads_aborted, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_upload_is_404_on_listing_completion_and_cancel() {
    let stack = stack(Options {
        no_poller: true,
        ..Options::default()
    })
    .await;
    let alice = stack.user("alice").await;
    let bob = stack.user("bob").await;
    let up = stack
        .new_upload(&alice, "big.pcap", (17 * MIB) as usize)
        .await;
    let task = task_of(&up);
    let path = format!("/api/uploads/{task}");
    let parts = json!({"parts": [{"part_number": 1, "etag": "x"}]});

    let listing = stack.call("GET", &path, &bob, None).await;
    let completion = stack
        .call("POST", &format!("{path}/complete"), &bob, Some(parts))
        .await;
    let cancel = stack.call("DELETE", &path, &bob, None).await;
    let unknown = stack
        .call(
            "GET",
            &format!("/api/uploads/{}", uuid::Uuid::new_v4()),
            &alice,
            None,
        )
        .await;
    let own = stack.call("GET", &path, &alice, None).await;
    let own_cancel = stack.call("DELETE", &path, &alice, None).await;
    let after = stack
        .call("GET", &format!("/api/status/{task}"), &alice, None)
        .await;

    for (what, r) in [
        ("listing", &listing),
        ("completion", &completion),
        ("cancel", &cancel),
        ("unknown id", &unknown),
    ] {
        assert_eq!(r.status, 404, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "not_found", "{what}");
    }
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own_cancel.status, 200, "{}", own_cancel.text());
    assert_eq!(after.status, 404, "the cancelled task is gone");
    assert!(stack
        .store
        .list_multiparts("uploads/")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_parts_do_not_add_up_to_the_declared_size_is_refused_and_nothing_is_analysed(
) {
    let stack = stack(Options::default()).await;
    let alice = stack.user("alice").await;
    let (body, _) = big_capture(9 * MIB);
    let up = stack.new_upload(&alice, "big.pcap", body.len()).await;
    let task = task_of(&up);
    let key = up["s3_key"].as_str().unwrap().to_string();
    let part_size = up["part_size"].as_u64().unwrap();
    let parts = parts_of(&up);
    let mut done = put_parts(&body, &parts[..1], part_size).await;
    // The last part sent around its signed URL, with credentials, one MiB longer than declared.
    let upload_id = stack.task_row(&task).await.multipart.unwrap().upload_id;
    let mut last = slice(&body, &parts[1], part_size);
    last.extend_from_slice(&vec![0; MIB as usize]);
    let out = stack
        .store
        .client()
        .upload_part()
        .bucket(&stack.bucket)
        .key(&key)
        .upload_id(&upload_id)
        .part_number(2)
        .body(last.into())
        .send()
        .await
        .expect("UploadPart with credentials");
    done.push(json!({"part_number": 2, "etag": out.e_tag().unwrap()}));

    let r = complete(&stack, &alice, &task, done).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let row = stack.task_row(&task).await;

    assert_eq!(parts.len(), 2);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains(&format!("declared {} bytes", body.len())),
        "{}",
        r.text()
    );
    assert_eq!(row.status, db::tasks::Status::Failed);
    assert_eq!(
        row.error_message.as_deref(),
        Some(tasks_api::SIZE_MISMATCH_MESSAGE)
    );
    assert!(row.report_json_key.is_none() && row.total_packets.is_none());
    assert!(!stack.object_exists(&key).await, "no object was made");
    assert!(stack
        .store
        .list_multiparts("uploads/")
        .await
        .unwrap()
        .is_empty());
}
