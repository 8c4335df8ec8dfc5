//! Finding new objects: a listing of the prefix's own level every `poll_interval` (every
//! `rescan_interval` with a queue, to catch lost events), and with `queue_url` the S3
//! events on SQS. Either way an object is claimed the same way: marked in flight here,
//! leased, checked unchanged, handed on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::queue::{Notice, Queue, Received, RECHECK};
use super::{status_of, ClaimedObject, Object, S3Source, Unchanged, LEASES};

/// What became of an attempt to claim an object.
enum Claim {
    Sent,
    /// Already being processed here.
    Busy,
    /// Another daemon holds its lease.
    Leased,
    /// Gone or replaced since it was seen.
    Gone,
    Failed,
    /// Nobody takes claimed objects any more (shutting down).
    Closed,
}

impl S3Source {
    /// Finds new objects until `cancel`, leasing and sending them while the pipeline has a
    /// free slot.
    pub async fn watch(
        self,
        slots: Arc<Semaphore>,
        tx: mpsc::Sender<ClaimedObject>,
        cancel: CancellationToken,
    ) {
        let listing = self.list_loop(&slots, &tx, &cancel);
        match self.queue.clone() {
            Some(queue) => {
                tokio::join!(listing, self.queue_loop(&queue, &slots, &tx, &cancel));
            }
            None => listing.await,
        }
    }

    async fn list_loop(
        &self,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<ClaimedObject>,
        cancel: &CancellationToken,
    ) {
        let every = match self.queue {
            Some(_) => self.settings.rescan_interval,
            None => self.settings.poll_interval,
        };
        let mut last_error = String::new();
        loop {
            match self.list().await {
                Ok(objects) => {
                    last_error.clear();
                    for object in objects {
                        let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                        if let Claim::Closed = self.claim(object, permit, None, tx).await {
                            return;
                        }
                    }
                }
                // Said once per distinct problem, not every poll.
                Err(e) if e != last_error => {
                    tracing::error!(bucket = %self.settings.bucket, error = %e, "cannot list the bucket; retrying");
                    last_error = e;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Marks `object` in flight here, leases it, and hands it on.
    async fn claim(
        &self,
        object: Object,
        permit: OwnedSemaphorePermit,
        notice: Option<Arc<Notice>>,
        tx: &mpsc::Sender<ClaimedObject>,
    ) -> Claim {
        let marked = self.in_flight.lock().map(|mut s| s.insert(object.key.clone()));
        if !marked.unwrap_or(false) {
            return Claim::Busy;
        }
        let lease_key = format!("{}{LEASES}{}", self.settings.prefix, object.name);
        let taken_at = tokio::time::Instant::now();
        let claim = match self.leases.acquire(&lease_key).await {
            // The listing may be stale: another daemon can have finished the object and
            // released its lease since. It releases only after the object is gone, so
            // checking now is enough.
            Ok(Some(acquired)) => match self.unchanged(&object).await {
                Unchanged::Yes => {
                    tracing::info!(file = %object.key, "claimed (lease taken)");
                    let claimed = ClaimedObject { object, acquired, taken_at, permit, notice };
                    return match tx.send(claimed).await {
                        Ok(()) => Claim::Sent,
                        Err(_) => Claim::Closed,
                    };
                }
                Unchanged::No => {
                    tracing::debug!(file = %object.key, "gone or replaced since seen");
                    self.leases.release(&acquired.lease).await;
                    Claim::Gone
                }
                // Kept: the lease may carry progress; it is taken back at the next try.
                Unchanged::Unknown(e) => {
                    tracing::warn!(file = %object.key, error = %e, "cannot look at the object just leased; trying again later");
                    Claim::Failed
                }
            },
            Ok(None) => {
                tracing::debug!(file = %object.key, "leased by another daemon");
                Claim::Leased
            }
            Err(e) => {
                tracing::warn!(file = %object.key, error = %e, "could not take the lease");
                Claim::Failed
            }
        };
        self.done(&object.key);
        claim
    }

    /// Long-polls the queue while the pipeline has a free slot.
    async fn queue_loop(
        &self,
        queue: &Queue,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<ClaimedObject>,
        cancel: &CancellationToken,
    ) {
        let mut last_error = String::new();
        loop {
            // Receive no more than can start now, so messages do not queue up here.
            let free = tokio::select! {
                _ = cancel.cancelled() => return,
                permit = slots.acquire() => match permit {
                    Ok(permit) => {
                        drop(permit);
                        slots.available_permits()
                    }
                    Err(_) => return,
                },
            };
            let received = tokio::select! {
                _ = cancel.cancelled() => return,
                r = queue.receive(free as i32) => r,
            };
            match received {
                Ok(messages) => {
                    last_error.clear();
                    for m in messages {
                        if !self.take_message(queue, m, slots, tx).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if e != last_error {
                        tracing::error!(error = %e, "cannot receive from the queue; retrying");
                        last_error = e;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }

    /// Claims what one message names; false when shutting down.
    async fn take_message(
        &self,
        queue: &Queue,
        m: Received,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<ClaimedObject>,
    ) -> bool {
        let Some(events) = m.events else {
            tracing::warn!(message = %m.id, "a queue message that is no S3 event: deleted");
            self.metrics.queue_message("malformed");
            queue.delete(&m.receipt).await;
            return true;
        };
        let names: Vec<String> = events
            .iter()
            .filter(|e| e.created && e.bucket == self.settings.bucket)
            .filter_map(|e| e.key.strip_prefix(self.settings.prefix.as_str()))
            .filter(|name| self.wants(name))
            .map(str::to_string)
            .collect();
        let notice = Notice::new(queue, &m.receipt, names.len().max(1));
        if names.is_empty() {
            self.metrics.queue_message("ignored");
            notice.finished().await;
            return true;
        }
        for name in names {
            let Ok(permit) = slots.clone().acquire_owned().await else { return false };
            if !self.take_object(&name, permit, &notice, tx).await {
                return false;
            }
        }
        true
    }

    /// Claims one object a message names; false when shutting down.
    async fn take_object(
        &self,
        name: &str,
        permit: OwnedSemaphorePermit,
        notice: &Arc<Notice>,
        tx: &mpsc::Sender<ClaimedObject>,
    ) -> bool {
        let key = format!("{}{name}", self.settings.prefix);
        let object = match self.head(&key, name).await {
            Ok(Some(object)) => object,
            Ok(None) => {
                tracing::debug!(file = %key, "named by an event but gone (finished already)");
                self.metrics.queue_message("ignored");
                notice.finished().await;
                return true;
            }
            Err(e) => {
                tracing::warn!(file = %key, error = %e, "cannot look at an object an event names; the message comes back");
                notice.put_back(RECHECK).await;
                return true;
            }
        };
        match self.claim(object, permit, Some(notice.clone()), tx).await {
            Claim::Sent => self.metrics.queue_message("taken"),
            Claim::Busy | Claim::Gone => {
                self.metrics.queue_message("ignored");
                notice.finished().await;
            }
            Claim::Leased | Claim::Failed => notice.put_back(RECHECK).await,
            Claim::Closed => return false,
        }
        true
    }

    /// The object at `key` as it is now; `None` when it is not there.
    async fn head(&self, key: &str, name: &str) -> Result<Option<Object>, String> {
        match self.client.head_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(h) => Ok(Some(Object {
                key: key.to_string(),
                name: name.to_string(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
                etag: h.e_tag().unwrap_or_default().to_string(),
                version: None,
                modified_ms: h.last_modified().map_or(0, |d| d.to_millis().unwrap_or(0)),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(super::describe(&e)),
        }
    }
}
