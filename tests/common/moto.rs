//! A real S3 server on loopback for the tests: `moto_server` (PyPI `moto[server]`; `.ci/run`
//! installs it), on a free port, stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment a daemon needs to reach moto with dummy credentials.
pub const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

impl Moto {
    /// A moto server, or `None` (the test skips, saying why) where it is not installed.
    pub async fn start_or_skip() -> Option<Self> {
        if !super::have_tool("moto_server", "python3 -m pip install 'moto[server]'") {
            return None;
        }
        Some(Self::start().await)
    }

    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed: python3 -m pip install 'moto[server]'");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if reqwest::get(format!("{endpoint}/moto-api/")).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, endpoint }
    }

    pub fn client(&self) -> Client {
        let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        Client::from_conf(conf)
    }

    pub async fn bucket(&self, name: &str) -> Client {
        let c = self.client();
        c.create_bucket().bucket(name).send().await.unwrap();
        c
    }
}

pub async fn put(c: &Client, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .unwrap();
}

pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Every key under `prefix`, through all pages.
pub async fn keys(c: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut pages = c.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            out.push(o.key().unwrap_or_default().to_string());
        }
    }
    out.sort();
    out
}

/// A Repsly pipeline over `s3://drop/incoming/` at `endpoint`; `source_extra` is added to the
/// source table (`, queue_url = "..."`).
pub fn s3_config(dir: &Path, sandbox: &str, endpoint: &str, source_extra: &str) -> PathBuf {
    let text = format!(
        r#"
state_dir = "{dir}/state"
shutdown_timeout = "5s"
[log]
format = "json"
[connections.repsly]
kind = "repsly"
base_url = "{sandbox}/v3"
username = "sandbox"
password = "sandbox"
rate_limit = "1000/s"
poll_interval = "20ms"
retry = {{ max_attempts = 10, initial_backoff = "10ms", max_backoff = "100ms" }}
[pipelines.clients]
connection = "repsly"
target = "repsly.clients"
source = {{ kind = "s3", bucket = "drop", prefix = "incoming/", region = "us-east-1", endpoint = "{endpoint}", poll_interval = "200ms"{source_extra} }}
batch = {{ max_rows = 25, max_wait = "100ms" }}
files_in_flight = 2
[pipelines.clients.fields]
Code = {{ column = "Code", transform = ["trim"] }}
Name = "Name"
Email = "Email"
"#,
        dir = dir.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until `prefix` holds at least `n` keys (or `limit` passes); returns them.
pub async fn wait_for_keys(
    c: &Client,
    bucket: &str,
    prefix: &str,
    n: usize,
    limit: Duration,
) -> Vec<String> {
    let started = Instant::now();
    loop {
        let k = keys(c, bucket, prefix).await;
        if k.len() >= n || started.elapsed() > limit {
            return k;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
