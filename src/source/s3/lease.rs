//! Leases: `<prefix>.leases/<name>` written with `If-None-Match: *`, so of two daemons only one
//! gets an object. The lease holds its owner and expiry, is renewed with `If-Match` on its
//! ETag while the object is processed, and an expired one (its owner died) is taken over the
//! same way. A daemon's owner id survives restarts, so it can take back its own leases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use super::{describe, status_of};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    owner: String,
    expires_at_ms: u64,
}

/// A lease this daemon holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    etag: String,
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

impl Leases {
    fn body(&self) -> ByteStream {
        let body = Body {
            owner: self.owner.clone(),
            expires_at_ms: now_ms() + self.ttl.as_millis() as u64,
        };
        ByteStream::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// Takes the lease if nobody holds it, if it expired, or if it is this daemon's own.
    pub async fn acquire(&self, key: &str) -> Result<Option<Lease>, String> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .body(self.body())
            .send()
            .await;
        match put {
            Ok(out) => {
                return Ok(Some(Lease {
                    key: key.to_string(),
                    etag: out.e_tag().unwrap_or_default().to_string(),
                }))
            }
            Err(e) if status_of(&e) == Some(412) || status_of(&e) == Some(409) => {}
            Err(e) => return Err(format!("cannot write lease {key}: {}", describe(&e))),
        }
        let current = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            // Released between our two calls: try again next round.
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(format!("cannot read lease {key}: {}", describe(&e))),
        };
        let etag = current.e_tag().unwrap_or_default().to_string();
        let bytes = current.body.collect().await.map(|b| b.into_bytes()).unwrap_or_default();
        let held: Option<Body> = serde_json::from_slice(&bytes).ok();
        let free =
            held.as_ref().is_none_or(|b| b.owner == self.owner || b.expires_at_ms < now_ms());
        if !free {
            return Ok(None);
        }
        if let Some(b) = &held {
            if b.owner != self.owner {
                tracing::warn!(lease = key, previous_owner = %b.owner, "taking over an expired lease");
            }
        }
        self.swap(key, &etag).await
    }

    /// Writes a fresh expiry if the lease is still the one with `etag`.
    async fn swap(&self, key: &str, etag: &str) -> Result<Option<Lease>, String> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .body(self.body())
            .send()
            .await;
        match put {
            Ok(out) => Ok(Some(Lease {
                key: key.to_string(),
                etag: out.e_tag().unwrap_or_default().to_string(),
            })),
            Err(e) if status_of(&e) == Some(412) || status_of(&e) == Some(409) => Ok(None),
            Err(e) => Err(format!("cannot write lease {key}: {}", describe(&e))),
        }
    }

    /// Extends a held lease; `Ok(None)` means another daemon took it.
    pub async fn renew(&self, lease: &Lease) -> Result<Option<Lease>, String> {
        self.swap(&lease.key, &lease.etag).await
    }

    pub async fn release(&self, lease: &Lease) {
        if let Err(e) =
            self.client.delete_object().bucket(&self.bucket).key(&lease.key).send().await
        {
            tracing::warn!(lease = %lease.key, error = %describe(&e), "could not delete the lease; it expires by itself");
        }
    }
}
