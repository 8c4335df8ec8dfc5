//! A leased S3 object: streamed through the shared file runner while its lease is renewed;
//! then reports uploaded, the ledger told, the object moved, the lease released. A read that
//! breaks off is read on from the byte reached (`source::s3::read`); one that keeps failing
//! is read again from the ledger's checkpoint, and after that waits for the next listing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::file::{self, FileRun, Ran};
use super::finished::Ended;
use super::Shared;
use crate::ledger::{FileState, Identity};
use crate::pipeline::{FileContext, FileResult, Input};
use crate::source::s3::{lease::Lease, ClaimedObject, Moved, S3File, S3Source};

/// Reads of one object that break off before it is given up for now (the next poll retries).
const MAX_READS: u32 = 5;

pub async fn handle(
    mut ctx: FileContext,
    source: S3Source,
    claimed: ClaimedObject,
    shared: Shared,
    upload_reports: bool,
) {
    let ClaimedObject { object, lease, permit, notice } = claimed;
    let _permit = permit;
    // This file's own tokens, which the renewer cancels directly when the lease is lost: it
    // stops without stopping the others, and no task waits on them after the file.
    ctx.stop = ctx.stop.child_token();
    ctx.abort = ctx.abort.child_token();
    let lost =
        Lost { stop: ctx.stop.clone(), abort: ctx.abort.clone(), flag: CancellationToken::new() };
    let renewer = tokio::spawn(renew(source.clone(), lease.clone(), lost.clone()));
    let stem = if upload_reports {
        source.report_stem(&object.name).await
    } else {
        crate::pipeline::unique_stem(&ctx.report_dir, &crate::report::stem_of(&object.name))
    };
    let run = ObjectRun { ctx: &ctx, source: &source, object: &object, shared: &shared, stem };
    let ran = run.until_done().await;
    renewer.abort();
    let release = run.file_away(ran, upload_reports).await;
    if release && !lost.flag.is_cancelled() {
        source.leases.release(&lease).await;
    }
    source.done(&object.key);
    // The message that named it goes once the object is finished; else it comes back.
    match notice {
        Some(n) if release => n.finished().await,
        Some(n) => n.put_back(crate::source::s3::queue::RECHECK).await,
        None => {}
    }
}

/// One leased object being processed.
struct ObjectRun<'a> {
    ctx: &'a FileContext,
    source: &'a S3Source,
    object: &'a crate::source::s3::Object,
    shared: &'a Shared,
    stem: String,
}

impl ObjectRun<'_> {
    /// Key, size and ETag (and version): a replaced object is a new file.
    fn identity(&self) -> Identity {
        let o = self.object;
        let version = o.version.as_deref().map(|v| format!("@{v}")).unwrap_or_default();
        Identity {
            pipeline: self.ctx.pipeline.name.clone(),
            name: o.key.clone(),
            size: o.size,
            hash: format!("etag:{}{version}", o.etag),
        }
    }

    /// Runs the object until it ends; a read that breaks off is tried again from the
    /// checkpoint, a disk that refuses writes is waited for.
    async fn until_done(&self) -> Ran {
        let (ctx, shared) = (self.ctx, self.shared);
        let input = Input::Remote(Arc::new(S3File {
            client: self.source.client.clone(),
            bucket: self.source.settings.bucket.clone(),
            object: self.object.clone(),
        }));
        let mut reads = 0;
        loop {
            reads += 1;
            let run = FileRun {
                ctx,
                input: input.clone(),
                name: &self.object.name,
                identity: self.identity(),
                stem: self.stem.clone(),
                left_by_earlier_run: false,
            };
            let ran = file::run(run, shared).await;
            if let Ran::Blocked { what, error } = &ran {
                // The disk refused: wait and read again (the state is in the ledger).
                shared.health.problem(what, error);
                tokio::select! {
                    _ = ctx.stop.cancelled() => return Ran::Interrupted,
                    _ = tokio::time::sleep(Duration::from_secs(2u64.pow(reads.min(5)))) => {}
                }
                shared.health.cleared(what);
                continue;
            }
            let broke = matches!(ran, Ran::Interrupted)
                && !ctx.stop.is_cancelled()
                && !ctx.abort.is_cancelled();
            if !broke || reads >= MAX_READS {
                return ran;
            }
            tracing::warn!(pipeline = %ctx.pipeline.name, file = %self.object.key, read = reads, "reading the object broke off; reading it again from the checkpoint");
            tokio::time::sleep(Duration::from_millis(200 * u64::from(reads))).await;
        }
    }

    /// Files the object away by how its run ended; whether its lease may be released.
    async fn file_away(&self, ran: Ran, upload: bool) -> bool {
        let (ctx, source, object, shared) = (self.ctx, self.source, self.object, self.shared);
        let (pipeline, name) = (&ctx.pipeline.name, &object.key);
        match ran {
            Ran::AlreadyDone { finished_at } => {
                tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same key and ETag): moving it to processed/ without sending anything");
                moved(source, object, false, name).await
            }
            Ran::Finished { result, file_id } => {
                finish(ctx, source, object, shared, result, file_id, upload).await
            }
            Ran::Crashed { file_id } | Ran::SetAside { file_id: Some(file_id), .. } => {
                let _ = shared.ledger.finish(file_id, FileState::Failed).await;
                moved(source, object, true, name).await
            }
            Ran::SetAside { file_id: None, why } => {
                file::write_failure_summary(
                    ctx,
                    shared,
                    Ended::set_aside(None),
                    &object.name,
                    &why,
                    None,
                );
                moved(source, object, true, name).await
            }
            Ran::Interrupted | Ran::Blocked { .. } => {
                tracing::info!(pipeline = %pipeline, file = %name, "stopped before the end; resumes later from the ledger (the lease expires if this daemon does not return)");
                false
            }
        }
    }
}

/// Reports up, ledger told, object moved: each step idempotent, in this order.
async fn finish(
    ctx: &FileContext,
    source: &S3Source,
    object: &crate::source::s3::Object,
    shared: &Shared,
    result: Box<FileResult>,
    file_id: i64,
    upload: bool,
) -> bool {
    let name = &object.key;
    if upload {
        let mut files = vec![result.summary_path.clone()];
        files.extend(result.errors_path.clone());
        for f in &files {
            if let Err(e) = source.upload_report(f).await {
                tracing::error!(file = %name, report = %f.display(), error = %e, "could not upload the report; the object is finished again at the next start");
                return false;
            }
        }
    }
    let failed = result.file_error.is_some();
    if let Err(e) = shared
        .ledger
        .finish(file_id, if failed { FileState::Failed } else { FileState::Finished })
        .await
    {
        tracing::error!(file = %name, error = %e, "cannot record the file as finished");
        return false;
    }
    // Only now: until the ledger says finished, a restart resumes from these local copies.
    if upload {
        for f in [Some(&result.summary_path), result.errors_path.as_ref()].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
    }
    let ok = moved(source, object, failed, name).await;
    let to = if failed { "failed/" } else { "processed/" };
    file::log_done(ctx, shared, file_id, name, &result, to);
    ok
}

async fn moved(
    source: &S3Source,
    object: &crate::source::s3::Object,
    failed: bool,
    name: &str,
) -> bool {
    match source.file_away(object, failed).await {
        Ok(Moved::To(_) | Moved::AlreadyGone) => true,
        Ok(Moved::Replaced) => {
            tracing::warn!(file = %name, "the object was replaced while it was imported: the version imported is done, and the new one stays in place to be imported on its own");
            true
        }
        Err(e) => {
            tracing::error!(file = %name, error = %e, "could not move the object; it is moved at the next start");
            false
        }
    }
}

/// What the renewer cancels when another daemon took the lease.
#[derive(Clone)]
struct Lost {
    stop: CancellationToken,
    abort: CancellationToken,
    /// Set when the lease was lost, so it is not released as if it were ours.
    flag: CancellationToken,
}

/// Renews the lease every third of its life; if another daemon took it, stops this file.
async fn renew(source: S3Source, mut lease: Lease, lost: Lost) {
    let every = source.leases.ttl / 3;
    loop {
        tokio::time::sleep(every).await;
        match source.leases.renew(&lease).await {
            Ok(Some(l)) => lease = l,
            Ok(None) => {
                tracing::error!(lease = %lease.key, "the lease was taken by another daemon; stopping this file");
                lost.flag.cancel();
                lost.stop.cancel();
                lost.abort.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %lease.key, error = %e, "could not renew the lease; trying again")
            }
        }
    }
}
