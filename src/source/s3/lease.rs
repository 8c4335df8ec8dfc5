//! Leases: `<prefix>.leases/<name>` written with `If-None-Match: *`, so of two daemons only one
//! gets an object. The lease holds its owner, its expiry and the object's progress
//! ([`Progress`]); every write of it is conditional (`If-Match` on its ETag), so only the
//! holder can write it ([`super::holding`]). An expired one (its owner died) is taken over the
//! same way, its progress carried over, and the object resumed from it. A daemon's owner id
//! survives restarts, so it can take back its own leases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::{describe, status_of};

/// A lease body longer than this is not read (its progress keeps its reports' tails short).
const MAX_LEASE_BYTES: i64 = 8 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    owner: String,
    expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
}

/// A lease this daemon holds: its key and the ETag of the body last written.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub etag: String,
}

/// A lease just taken, with the progress it carried (an earlier holder's, or this
/// daemon's own from before a restart).
#[derive(Debug, Clone)]
pub struct Acquired {
    pub lease: Lease,
    pub found: Option<Progress>,
}

#[derive(Debug, Clone)]
pub struct Leases {
    pub client: Client,
    pub bucket: String,
    pub owner: String,
    pub ttl: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A lease body: `owner` holds it for `ttl` from now, with `progress`.
pub fn body(owner: &str, ttl: Duration, progress: Option<&Progress>) -> Vec<u8> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let body = Body {
        owner: owner.to_string(),
        expires_at_ms: now_ms().saturating_add(ttl_ms),
        progress: progress.cloned(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Why a conditional write of a lease did not happen.
#[derive(Debug)]
pub enum Refused {
    /// Its ETag changed: another daemon holds it now.
    Taken,
    /// It could not be written (the network, the store): try again.
    Failed(String),
}

/// Where a held lease is written: S3, or a fake in the unit tests.
pub trait LeaseStore: Send + Sync + 'static {
    /// Writes `body` over the lease at `key` if its ETag is still `etag`; the new ETag.
    fn replace<'a>(
        &'a self,
        key: &'a str,
        etag: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Refused>>;
    /// Writes `body` at `key` unless an object is there (a report segment: one written by an
    /// earlier try of the same write is the same bytes).
    fn create_part<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
}

impl LeaseStore for Leases {
    fn replace<'a>(
        &'a self,
        key: &'a str,
        etag: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, Refused>> {
        async move {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_match(etag)
                .body(ByteStream::from(body))
                .send()
                .await;
            match put {
                Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
                Err(e) if matches!(status_of(&e), Some(412 | 409 | 404)) => Err(Refused::Taken),
                Err(e) => {
                    Err(Refused::Failed(format!("cannot write lease {key}: {}", describe(&e))))
                }
            }
        }
        .boxed()
    }

    fn create_part<'a>(&'a self, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        async move { self.put_new(key, body).await.map(|_| ()) }.boxed()
    }
}

impl Leases {
    /// Takes the lease if nobody holds it, if it expired, or if it is this daemon's own; an
    /// earlier holder's progress is carried over into it as it was.
    pub async fn acquire(&self, key: &str) -> Result<Option<Acquired>, String> {
        if let Some(etag) = self.put_new(key, body(&self.owner, self.ttl, None)).await? {
            return Ok(Some(Acquired { lease: Lease { key: key.to_string(), etag }, found: None }));
        }
        let Some((etag, held)) = self.read(key).await? else { return Ok(None) };
        let free =
            held.as_ref().is_none_or(|b| b.owner == self.owner || b.expires_at_ms < now_ms());
        if !free {
            return Ok(None);
        }
        let found = held.and_then(|b| {
            if b.owner != self.owner {
                tracing::warn!(lease = key, previous_owner = %b.owner, "taking over an expired lease");
            }
            b.progress
        });
        let body = body(&self.owner, self.ttl, found.as_ref());
        match self.replace(key, &etag, body).await {
            Ok(etag) => Ok(Some(Acquired { lease: Lease { key: key.to_string(), etag }, found })),
            Err(Refused::Taken) => Ok(None),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    /// Writes `body` at `key` unless an object is there: its ETag, or `None` if one was.
    async fn put_new(&self, key: &str, body: Vec<u8>) -> Result<Option<String>, String> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match put {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if matches!(status_of(&e), Some(412 | 409)) => Ok(None),
            Err(e) => Err(format!("cannot write {key}: {}", describe(&e))),
        }
    }

    /// The lease at `key` and its ETag; `None` when it is not there. A body that cannot be
    /// read is an error: its progress may name rows already sent, so it is never taken blind.
    async fn read(&self, key: &str) -> Result<Option<(String, Option<Body>)>, String> {
        let current = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            // Released between our two calls: try again next round.
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(format!("cannot read lease {key}: {}", describe(&e))),
        };
        let unreadable = |why: String| {
            format!("lease {key} cannot be read ({why}): the object is left alone, as its progress may name rows already sent; delete the lease object to import the object again from its first row")
        };
        if current.content_length().unwrap_or(0) > MAX_LEASE_BYTES {
            return Err(unreadable(format!("longer than {MAX_LEASE_BYTES} bytes")));
        }
        let etag = current.e_tag().unwrap_or_default().to_string();
        let bytes = current
            .body
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| format!("cannot read lease {key}: {e}"))?;
        if bytes.is_empty() {
            return Ok(Some((etag, None)));
        }
        let held: Body = serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if let Some(p) = &held.progress {
            p.check().map_err(unreadable)?;
        }
        Ok(Some((etag, Some(held))))
    }

    /// The `len` bytes of a report segment a progress names.
    pub async fn read_part(&self, key: &str, len: u64) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("cannot read {key}: {}", describe(&e)))?;
        let found = out.content_length().and_then(|n| u64::try_from(n).ok());
        if found != Some(len) {
            return Err(format!("{key} holds {found:?} bytes, not the {len} its progress names"));
        }
        let bytes = out.body.collect().await.map_err(|e| format!("cannot read {key}: {e}"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Deletes the report segments of a lease (its object is finished).
    pub async fn remove_parts(&self, lease_key: &str) {
        let prefix = format!("{lease_key}{PARTS}");
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(Ok(page)) = pages.next().await {
            for key in page.contents().iter().filter_map(|o| o.key()) {
                let _ = self.client.delete_object().bucket(&self.bucket).key(key).send().await;
            }
        }
    }

    pub async fn release(&self, lease: &Lease) {
        if let Err(e) =
            self.client.delete_object().bucket(&self.bucket).key(&lease.key).send().await
        {
            tracing::warn!(lease = %lease.key, error = %describe(&e), "could not delete the lease; it expires by itself");
        }
    }
}

/// Report segments live under `<lease key>.parts/<writer>/`.
pub const PARTS: &str = ".parts/";
