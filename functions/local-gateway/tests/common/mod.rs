//! A real `local-gateway` server on a loopback port and a minimal HTTP/1.1 client for it.
#![allow(dead_code)]

use db::test_support::{fresh_database, local_env, TestDatabase};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tasks_api::State;

pub struct Gateway {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    pub state: Arc<State>,
}

pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: serde_json::Value,
    pub raw: String,
}

impl Gateway {
    /// Serves a fresh, migrated database on 127.0.0.1 at a free port, with the S3 bucket and
    /// SQS queue of the local stack (`localstack/local.env`).
    pub async fn spawn() -> Gateway {
        Gateway::spawn_with_web(None).await
    }

    /// Same, also serving the UI from `web` on every path outside `/api/`.
    pub async fn spawn_with_web(web: Option<local_gateway::WebRoot>) -> Gateway {
        let db = fresh_database().await;
        let env = local_env();
        let aws = storage::aws::sdk_config(|k| env.get(k).cloned()).await;
        let bucket = env
            .get("BUCKET_NAME")
            .cloned()
            .expect("BUCKET_NAME in localstack/local.env: run localstack/up");
        let queue = env
            .get("QUEUE_URL")
            .cloned()
            .expect("QUEUE_URL in localstack/local.env: run localstack/up");
        let auth =
            auth_api::State::with_pool(db.settings(&[]), &db.api_keys(), db.app_pool.clone());
        let state = Arc::new(State::new(
            auth,
            Arc::new(storage::s3::S3Store::new(&aws, bucket)),
            Arc::new(storage::sqs::SqsQueue::new(&aws, queue)),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(local_gateway::serve_with_web(
            listener,
            state.clone(),
            web.map(Arc::new),
        ));
        Gateway { addr, db, state }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let raw = String::from_utf8_lossy(&bytes).to_string();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
            raw,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        match token {
            Some(t) => {
                let h = format!("Bearer {t}");
                self.request("GET", path, &[("authorization", &h)], "")
                    .await
            }
            None => self.request("GET", path, &[], "").await,
        }
    }
}
