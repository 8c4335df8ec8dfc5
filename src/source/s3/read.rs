//! An object read as one stream that heals: a GET that fails for the transport's sake (a
//! reset, a timeout, `503 SlowDown`, any 5xx or 429) or a body that breaks off is asked for
//! again from the byte reached (`Range: bytes=N-`), with backoff, always with `If-Match` on
//! the ETag it was claimed with, so the bytes are all of one version. Only after
//! [`MAX_TRIES`] tries in a row without a byte does the stream fail, as "the source broke"
//! ([`SOURCE_BROKE`]): the file is then read again later, never failed for it.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::{describe, status_of, Object};
use crate::csvio::{BoxRead, SOURCE_BROKE};

/// GETs in a row that bring no byte before the read gives up for now.
pub const MAX_TRIES: u32 = 6;
/// The wait after the first failed try; doubled after each, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(8);

/// What a GET came to when it brought no body.
enum Refused {
    /// The transport's fault: try again.
    Transient(String),
    /// Asked from the end: nothing is left (416).
    End,
    /// The object's: replaced, gone, or not ours to read.
    Final(std::io::Error),
}

struct Reading {
    client: Client,
    bucket: String,
    object: Object,
    /// Bytes handed on so far: where the next GET starts.
    pos: u64,
    body: Option<ByteStream>,
    /// Tries in a row that brought nothing.
    failures: u32,
}

/// The object's bytes from its start, read through faults as described above.
pub fn healing(client: Client, bucket: String, object: Object) -> BoxRead {
    let reading = Reading { client, bucket, object, pos: 0, body: None, failures: 0 };
    let chunks = futures::stream::unfold(Some(reading), |state| async move {
        let mut reading = state?;
        match reading.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(reading))),
            Ok(None) => None,
            // The error ends the stream.
            Err(e) => Some((Err(e), None)),
        }
    });
    Box::pin(tokio_util::io::StreamReader::new(chunks))
}

impl Reading {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                if self.object.size > 0 && self.pos >= self.object.size {
                    return Ok(None);
                }
                match self.get().await {
                    Ok(body) => self.body = Some(body),
                    Err(Refused::End) => return Ok(None),
                    Err(Refused::Final(e)) => return Err(e),
                    Err(Refused::Transient(why)) => self.failed(why).await?,
                }
                continue;
            };
            match body.next().await {
                Some(Ok(bytes)) => {
                    self.pos += bytes.len() as u64;
                    self.failures = 0;
                    return Ok(Some(bytes));
                }
                Some(Err(e)) => {
                    self.body = None;
                    self.failed(format!("the answer broke off: {e}")).await?;
                }
                None => {
                    self.body = None;
                    if self.pos >= self.object.size {
                        return Ok(None);
                    }
                    self.failed("the answer ended early".into()).await?;
                }
            }
        }
    }

    /// One GET from the byte reached, of the version claimed.
    async fn get(&self) -> Result<ByteStream, Refused> {
        let o = &self.object;
        let mut get = self.client.get_object().bucket(&self.bucket).key(&o.key);
        if !o.etag.is_empty() {
            get = get.if_match(&o.etag);
        }
        if self.pos > 0 {
            get = get.range(format!("bytes={}-", self.pos));
        }
        let e = match get.send().await {
            Ok(out) => return Ok(out.body),
            Err(e) => e,
        };
        let why = || format!("cannot read s3://{}/{}: {}", self.bucket, o.key, describe(&e));
        match status_of(&e) {
            Some(416) => Err(Refused::End),
            Some(412) => Err(Refused::Final(std::io::Error::other(format!(
                "s3://{}/{} was replaced while it was read (its ETag is no longer {}); the new version is imported on its own",
                self.bucket, o.key, o.etag
            )))),
            Some(408 | 429) | Some(500..=599) | None => Err(Refused::Transient(why())),
            Some(_) => Err(Refused::Final(std::io::Error::other(why()))),
        }
    }

    /// Counts a try that brought nothing and waits before the next; an error (the source
    /// broke) once [`MAX_TRIES`] tries in a row failed.
    async fn failed(&mut self, why: String) -> std::io::Result<()> {
        self.failures += 1;
        if self.failures >= MAX_TRIES {
            return Err(std::io::Error::new(
                SOURCE_BROKE,
                format!("{why} ({} tries in a row)", self.failures),
            ));
        }
        tracing::warn!(file = %self.object.key, byte = self.pos, attempt = self.failures, error = %why, "reading the object failed; reading on from the byte reached");
        tokio::time::sleep(wait_after(self.failures)).await;
        Ok(())
    }
}

/// Exponential from [`FIRST_WAIT`], capped at [`MAX_WAIT`], with jitter in its upper half.
fn wait_after(failures: u32) -> Duration {
    let ceiling = FIRST_WAIT.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_WAIT);
    let half = ceiling / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stay_bounded() {
        for n in 1..40 {
            let w = wait_after(n);
            assert!(w <= MAX_WAIT && w >= FIRST_WAIT / 2, "{n}: {w:?}");
        }
        assert!(wait_after(3) >= FIRST_WAIT * 2);
    }
}
