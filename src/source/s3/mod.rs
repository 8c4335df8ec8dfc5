//! The S3 source: lists `bucket/prefix` every `poll_interval`, leases and streams each new
//! object, and afterwards moves it to `<prefix>processed/` or `<prefix>failed/` with its
//! reports under `<prefix>reports/`. Every finishing step is idempotent, so a crash between
//! them is finished at the next start.

mod archive;
mod discover;
pub mod holding;
pub mod lease;
pub mod progress;
pub mod queue;
pub mod read;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::S3Settings;
use crate::csvio::BoxRead;
use crate::pipeline::RemoteFile;
pub use archive::Moved;
use lease::{Acquired, Leases};

pub const PROCESSED: &str = "processed/";
pub const FAILED: &str = "failed/";
pub const REPORTS: &str = "reports/";
pub const LEASES: &str = ".leases/";

/// An object directly under the prefix.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    /// The key without the prefix.
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub version: Option<String>,
    pub modified_ms: i64,
}

/// Whether an object is as it was listed.
enum Unchanged {
    Yes,
    /// Gone, or replaced by another version.
    No,
    /// It could not be looked at.
    Unknown(String),
}

/// An object this daemon holds the lease of.
pub struct ClaimedObject {
    pub object: Object,
    /// Its lease, with the progress an earlier holder left in it.
    pub acquired: Acquired,
    /// When the write that took the lease was sent: its deadline counts from then.
    pub taken_at: tokio::time::Instant,
    pub permit: OwnedSemaphorePermit,
    /// The queue message that named it, to delete once it is finished.
    pub notice: Option<Arc<queue::Notice>>,
}

#[derive(Clone)]
pub struct S3Source {
    pub settings: S3Settings,
    pub client: Client,
    pub leases: Leases,
    patterns: Vec<glob::Pattern>,
    /// Keys being processed here: not listed again until done.
    pub in_flight: Arc<Mutex<HashSet<String>>>,
    /// SQS discovery, when `queue_url` is set.
    queue: Option<queue::Queue>,
    /// Where listings and queue messages are counted.
    metrics: &'static crate::metrics::Metrics,
}

/// The HTTP status of a failed S3 call, when it got that far.
pub fn status_of<E, R: HasStatus>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HasStatus::status_code)
}

pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// One line for an S3 error, saying plainly when credentials are the problem.
pub fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    let full = aws_sdk_s3::error::DisplayErrorContext(e).to_string().replace('\n', " ");
    if full.to_ascii_lowercase().contains("credentials") {
        return "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE), or a role".into();
    }
    full
}

/// Percent-encodes a key for `x-amz-copy-source` (slashes stay).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl S3Source {
    /// Builds the client from the standard AWS chain (env, profile, web identity, instance
    /// metadata), with `endpoint` and path-style addressing for S3-compatible stores.
    pub async fn new(
        settings: S3Settings,
        patterns: Vec<glob::Pattern>,
        state_dir: &Path,
        metrics: &'static crate::metrics::Metrics,
    ) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut conf =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
        if shared.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let client = Client::from_conf(conf.build());
        let queue = settings.queue_url.clone().map(|url| {
            let mut conf = aws_sdk_sqs::config::Builder::from(&shared);
            if shared.region().is_none() {
                conf = conf.region(aws_config::Region::new("us-east-1"));
            }
            // With an S3-compatible store, the queue is served where its URL says (the same
            // server as S3 for moto or LocalStack, another one for ElasticMQ).
            if let Some(endpoint) = &settings.endpoint {
                conf = conf.endpoint_url(queue::origin(&url).unwrap_or_else(|| endpoint.clone()));
            }
            queue::Queue { client: aws_sdk_sqs::Client::from_conf(conf.build()), url }
        });
        let leases = Leases {
            client: client.clone(),
            bucket: settings.bucket.clone(),
            owner: crate::source::owner::id(state_dir),
            ttl: settings.lease_ttl,
        };
        Self { settings, client, leases, patterns, in_flight: Arc::default(), queue, metrics }
    }

    fn wants(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if name.is_empty()
            || name.contains('/')
            || name.starts_with('.')
            || lower.ends_with(".tmp")
            || lower.ends_with(".part")
        {
            return false;
        }
        let opts = glob::MatchOptions { case_sensitive: false, ..Default::default() };
        self.patterns.iter().any(|p| p.matches_with(name, opts))
    }

    /// Objects directly under the prefix that match the pattern, oldest first. Only the
    /// prefix's own level is listed (delimiter `/`): `processed/`, `failed/`, `reports/` and
    /// `.leases/` come back as one common prefix each, so a listing costs about one LIST
    /// call per thousand new objects whatever the archive holds.
    pub async fn list(&self) -> Result<Vec<Object>, String> {
        let prefix = &self.settings.prefix;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut calls = 0;
        let counted = |calls| self.metrics.s3_listing(&self.settings.bucket, calls);
        while let Some(page) = pages.next().await {
            calls += 1;
            let page = page.map_err(|e| {
                counted(calls);
                format!("cannot list s3://{}/{prefix}: {}", self.settings.bucket, describe(&e))
            })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let name = key.strip_prefix(prefix.as_str()).unwrap_or(key);
                if !self.wants(name) {
                    continue;
                }
                out.push(Object {
                    key: key.to_string(),
                    name: name.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    version: None,
                    modified_ms: o.last_modified().map_or(0, |d| d.to_millis().unwrap_or(0)),
                });
            }
        }
        counted(calls);
        out.sort_by(|a, b| (a.modified_ms, &a.key).cmp(&(b.modified_ms, &b.key)));
        Ok(out)
    }

    pub fn done(&self, key: &str) {
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(key);
        }
    }

    /// Whether the object is still there with the ETag it was listed with.
    async fn unchanged(&self, object: &Object) -> Unchanged {
        match self.client.head_object().bucket(&self.settings.bucket).key(&object.key).send().await
        {
            Ok(head) if head.e_tag().unwrap_or_default() == object.etag => Unchanged::Yes,
            Ok(_) => Unchanged::No,
            Err(e) if status_of(&e) == Some(404) => Unchanged::No,
            Err(e) => Unchanged::Unknown(describe(&e)),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, String> {
        match self.client.head_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Uploads a local report file to `<prefix>reports/<name>`.
    pub async fn upload_report(&self, local: &Path) -> Result<(), String> {
        let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let body = aws_sdk_s3::primitives::ByteStream::from_path(local)
            .await
            .map_err(|e| e.to_string())?;
        let key = format!("{}{REPORTS}{name}", self.settings.prefix);
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(())
    }

    /// A report stem not used yet under `<prefix>reports/`.
    pub async fn report_stem(&self, name: &str) -> String {
        let stem = crate::report::stem_of(name);
        let key = format!("{}{REPORTS}{stem}.summary.json", self.settings.prefix);
        // A report dropped back in: named after its original, always with a timestamp.
        let stamped = |s: &str| format!("{s}.{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        if let Some(original) = crate::report::redropped(&stem) {
            return stamped(original);
        }
        match self.exists(&key).await {
            Ok(false) => stem,
            _ => stamped(&stem),
        }
    }

    /// One harmless list call, for `check --connect`.
    /// With a queue, one attributes call on it too.
    pub async fn probe(&self) -> Result<(), String> {
        self.client
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .prefix(&self.settings.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| {
                format!("s3://{}/{}: {}", self.settings.bucket, self.settings.prefix, describe(&e))
            })?;
        match &self.queue {
            Some(q) => q.probe().await,
            None => Ok(()),
        }
    }
}

/// An object streamed from S3, from its start each time it is opened, through transport
/// faults ([`read::healing`]).
pub struct S3File {
    pub client: Client,
    pub bucket: String,
    pub object: Object,
}

impl RemoteFile for S3File {
    fn name(&self) -> &str {
        &self.object.name
    }

    fn size(&self) -> u64 {
        self.object.size
    }

    fn open(&self) -> BoxFuture<'_, Result<BoxRead, String>> {
        let body = read::healing(self.client.clone(), self.bucket.clone(), self.object.clone());
        async move { Ok(body) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_keys_are_encoded() {
        assert_eq!(encode_key("in/My File (1).csv"), "in/My%20File%20%281%29.csv");
        assert_eq!(encode_key("in/zoë.csv"), "in/zo%C3%AB.csv");
    }
}
