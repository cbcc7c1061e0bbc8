//! S3 event notifications as they arrive in SQS message bodies.

use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// What one SQS message body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Sent by S3 once when the notification is configured; nothing to do.
    Test,
    /// Objects created (normally one).
    Created(Vec<CreatedObject>),
    /// A message we do not understand: never retried, it would only fail again.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// URL-decoded object key.
    pub key: String,
    pub size_bytes: Option<u64>,
    pub etag: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: Option<String>,
    s3: Option<S3Part>,
}

#[derive(Deserialize)]
struct S3Part {
    bucket: Option<Named>,
    object: Option<Object>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: Option<String>,
    size: Option<u64>,
    e_tag: Option<String>,
}

/// Reads an SQS message body holding an S3 notification.
pub fn parse(body: &str) -> Notification {
    let parsed: Body = match serde_json::from_str(body) {
        Ok(b) => b,
        Err(e) => return Notification::Unknown(format!("not an S3 notification: {e}")),
    };
    if parsed.event.as_deref() == Some("s3:TestEvent") {
        return Notification::Test;
    }
    let Some(records) = parsed.records else {
        return Notification::Unknown("no Records in the message".into());
    };
    Notification::Created(
        records
            .into_iter()
            .filter(|r| {
                r.event_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("ObjectCreated"))
            })
            .filter_map(|r| {
                let s3 = r.s3?;
                let object = s3.object?;
                Some(CreatedObject {
                    bucket: s3.bucket.and_then(|b| b.name).unwrap_or_default(),
                    key: decode_key(&object.key?),
                    size_bytes: object.size,
                    etag: object.e_tag.map(|t| t.trim_matches('"').to_string()),
                })
            })
            .collect(),
    )
}

/// S3 URL-encodes keys in notifications the way HTML forms do: `+` is a space, `%XX` a byte.
pub fn decode_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// A message for the owner of a file that is not a capture, from the engine's reason.
pub fn not_a_capture_message(why: engine::NotACapture) -> String {
    const UPLOAD: &str = "Upload a pcap or pcapng file (e.g. saved by Wireshark or tcpdump -w).";
    match why {
        engine::NotACapture::Empty => "The uploaded file is empty.".into(),
        engine::NotACapture::UnknownMagic {
            looks_like_text: true,
        } => format!("This file is not a packet capture: it looks like text. {UPLOAD}"),
        engine::NotACapture::UnknownMagic {
            looks_like_text: false,
        } => format!(
            "This file is not a packet capture: it does not start with a pcap or pcapng header. {UPLOAD}"
        ),
        why => format!("This file is not a usable capture: {why}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQS events of `tests/events/` (also used with `cargo lambda invoke`).
    fn fixture(name: &str) -> Vec<Notification> {
        let path = format!(
            "{}/../../tests/events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&text).unwrap();
        event
            .records
            .iter()
            .map(|r| parse(r.body.as_deref().unwrap()))
            .collect()
    }

    #[test]
    fn fixtures_parse_into_what_the_analyzer_acts_on() {
        assert_eq!(fixture("s3-test-event"), vec![Notification::Test]);
        let Notification::Created(put) = &fixture("s3-put")[0] else {
            panic!("not a created object")
        };
        assert_eq!(
            put[0].key,
            "uploads/00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
        );
        assert_eq!(put[0].size_bytes, Some(684660));
        let Notification::Created(encoded) = &fixture("s3-put-encoded-key")[0] else {
            panic!("not a created object")
        };
        assert_eq!(encoded[0].key, "uploads/legacy/my trace (1).pcap");
        assert_eq!(encoded[0].etag.as_deref(), Some("abc"));
    }

    #[test]
    fn the_s3_test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00Z","Bucket":"b"}"#;
        assert_eq!(parse(body), Notification::Test);
    }

    #[test]
    fn keys_are_url_decoded_like_s3_encodes_them() {
        assert_eq!(
            decode_key("uploads/a+b%2Fc%C3%A9.pcap"),
            "uploads/a b/cé.pcap"
        );
        assert_eq!(decode_key("incoming%2Fa.pcap"), "incoming/a.pcap");
    }

    #[test]
    fn other_events_and_garbage_are_not_created_objects() {
        let body =
            r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"object":{"key":"k"}}}]}"#;
        assert_eq!(parse(body), Notification::Created(vec![]));
        assert!(matches!(parse("not json"), Notification::Unknown(_)));
    }

    #[test]
    fn the_owner_is_told_why_a_file_is_not_a_capture() {
        let text = engine::NotACapture::UnknownMagic {
            looks_like_text: true,
        };
        assert!(not_a_capture_message(text).contains("looks like text"));
        assert!(not_a_capture_message(engine::NotACapture::Empty).contains("empty"));
        let gz = not_a_capture_message(engine::NotACapture::BadGzip);
        assert!(gz.contains("gzip"), "{gz}");
    }
}
