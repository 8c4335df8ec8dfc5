//! A leased S3 object: streamed through the shared file runner while its lease is held (its
//! progress written into the lease, so another replica can resume it: `source::s3::holding`);
//! then reports uploaded, the ledger told, the object moved, the lease released.
//!
//! A lease taken over from a replica that died comes with that replica's progress: the
//! ledger adopts it and its partial reports are fetched, so the object resumes as the dead
//! replica's own restart would have. While this daemon holds the lease, its own ledger is the
//! object's record (the lease mirrors it). If the lease is lost, or cannot be renewed before
//! its deadline, the object is stopped and left alone: no report, no move.
//!
//! A read that breaks off is read on from the byte reached (`source::s3::read`); one that
//! keeps failing is read again from the ledger's checkpoint, and after that waits for the
//! next listing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::file::{self, FileRun, Ran};
use super::finished::Ended;
use super::Shared;
use crate::ledger::{Claim, FileState, Identity, LedgerError, Resume};
use crate::pipeline::{FileContext, FileResult, Input};
use crate::report;
use crate::source::s3::holding::{Holder, Holding, Start};
use crate::source::s3::progress::Progress;
use crate::source::s3::{ClaimedObject, Moved, Object, S3File, S3Source};

/// Reads of one object that break off before it is given up for now (the next poll retries).
const MAX_READS: u32 = 5;

pub async fn handle(
    mut ctx: FileContext,
    source: S3Source,
    claimed: ClaimedObject,
    shared: Shared,
    upload_reports: bool,
) {
    let ClaimedObject { object, acquired, taken_at, permit, notice } = claimed;
    let _permit = permit;
    // This object's own tokens, which the holding cancels when the lease is lost: it stops
    // without stopping the others, and no task waits on them after the object.
    ctx.stop = ctx.stop.child_token();
    ctx.abort = ctx.abort.child_token();
    // A progress of another version of the object is of no use to this one.
    let found = acquired.found.filter(|p| p.etag == object.etag);
    let stem = match &found {
        Some(p) => p.report_stem.clone(),
        None if upload_reports => source.report_stem(&object.name).await,
        None => crate::pipeline::unique_stem(&ctx.report_dir, &report::stem_of(&object.name)),
    };
    let holding = Holding::start(Holder {
        store: Arc::new(source.leases.clone()),
        lease: acquired.lease,
        taken_at,
        owner: source.leases.owner.clone(),
        ttl: source.leases.ttl,
        object_etag: object.etag.clone(),
        carried: found.clone(),
        report_dir: ctx.report_dir.clone(),
        jobs_have_steps: !ctx.target.steps("", "", &[]).is_empty(),
        stop: ctx.stop.clone(),
        abort: ctx.abort.clone(),
    });
    let run = ObjectRun {
        ctx: &ctx,
        source: &source,
        object: &object,
        shared: &shared,
        stem,
        holding: holding.clone(),
        found,
        file_id: Mutex::new(None),
    };
    let ran = run.until_done().await;
    let release = match holding.ended() {
        Some(why) => {
            run.abandon(why.message());
            false
        }
        None => run.file_away(ran, upload_reports).await,
    };
    if release {
        source.leases.remove_parts(&holding.lease().key).await;
    }
    holding.close();
    if release {
        source.leases.release(&holding.lease()).await;
    }
    if let Some(id) = run.file_id.lock().ok().and_then(|g| *g) {
        shared.ledger.detach(id);
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
    object: &'a Object,
    shared: &'a Shared,
    stem: String,
    holding: Arc<Holding>,
    /// The progress the lease carried when taken (of this version of the object).
    found: Option<Progress>,
    /// The ledger's id of the object, once a run began (its mirror is detached at the end).
    file_id: Mutex<Option<i64>>,
}

/// Why the progress a lease carried could not be taken over (its report segments could not
/// be fetched or written here, or the ledger refused it).
struct NotAdopted(String);

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
    /// checkpoint, a disk that refuses writes and a connection that holds (refused
    /// credentials) are waited for, the lease held meanwhile.
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
            let claim = match self.claim().await {
                Ok(claim) => claim,
                Err(NotAdopted(e)) => {
                    // The lease keeps the earlier holder's progress, written back as it was;
                    // the object is taken again at a later listing.
                    tracing::warn!(pipeline = %ctx.pipeline.name, file = %self.object.key, error = %e, "cannot take over the progress the object's lease carries; trying again later");
                    return Ran::Interrupted;
                }
            };
            let Some(ran) = file::run_claimed(run, claim, shared).await else {
                // The connection holds: the object waits at its checkpoint, then is claimed
                // again (a hold is no broken read).
                reads -= 1;
                if !file::until_accepted(ctx, &self.object.name).await {
                    return Ran::Interrupted;
                }
                continue;
            };
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

    /// Asks the ledger about the object; before the first run begins, resumes from the
    /// progress the lease carried when that is further than (or other than) this daemon's
    /// own record. The ledger mirrors the object into its lease from then on.
    async fn claim(&self) -> Result<Result<Claim, LedgerError>, NotAdopted> {
        let claim = match self.shared.ledger.claim(self.identity(), self.stem.clone()).await {
            Ok(claim) => claim,
            Err(e) => return Ok(Err(e)),
        };
        let (file_id, started_at) = match &claim {
            Claim::Finished { .. } => return Ok(Ok(claim)),
            Claim::Fresh { file_id, started_at } => (*file_id, started_at.clone()),
            Claim::Resume(r) => (r.file_id, r.started_at.clone()),
        };
        let begun = self.file_id.lock().map(|g| g.is_some()).unwrap_or(true);
        let found = self.found.as_ref().filter(|_| !begun);
        let owner = &self.source.leases.owner;
        let claim = match (found, claim) {
            (Some(p), Claim::Resume(r))
                if p.writer == *owner && r.checkpoint.watermark >= p.watermark =>
            {
                Claim::Resume(r)
            }
            (Some(p), _) => Claim::Resume(self.adopt(file_id, p).await?),
            (None, claim) => claim,
        };
        self.shared.ledger.attach(file_id, self.holding.clone());
        let resume = match &claim {
            Claim::Resume(r) => Some(r),
            _ => None,
        };
        let start = Start {
            resume,
            parts: found,
            report_stem: resume.map_or(&self.stem, |r| &r.report_stem),
            started_at: resume.map_or(&started_at, |r| &r.started_at),
        };
        self.holding.begin(start).await;
        if let Ok(mut g) = self.file_id.lock() {
            *g = Some(file_id);
        }
        Ok(Ok(claim))
    }

    /// Takes over the progress `p` another replica left: its partial reports fetched into
    /// place, then its record adopted by the ledger.
    async fn adopt(&self, file_id: i64, p: &Progress) -> Result<Resume, NotAdopted> {
        let dir = &self.ctx.report_dir;
        let stem = &p.report_stem;
        let places = [report::partial_name(dir, stem), report::warnings_partial_name(dir, stem)];
        for (part, path) in [&p.errors, &p.warnings].into_iter().zip(places) {
            let mut bytes = Vec::new();
            for segment in &part.segments {
                let more = self.source.leases.read_part(&segment.key, segment.len).await;
                bytes.extend(more.map_err(NotAdopted)?);
            }
            bytes.extend(part.tail_bytes().map_err(NotAdopted)?);
            let wrote = if bytes.is_empty() {
                std::fs::remove_file(&path).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
            } else {
                report::atomic::write_private(&path, &bytes, report::atomic::PRIVATE)
            };
            wrote.map_err(|e| NotAdopted(format!("{}: {e}", path.display())))?;
        }
        let resume = p.to_resume(file_id);
        self.shared.ledger.adopt(resume.clone()).await.map_err(|e| NotAdopted(e.to_string()))?;
        tracing::warn!(pipeline = %self.ctx.pipeline.name, file = %self.object.key, previous_owner = %p.writer, from_line = p.watermark + 2, rows_settled = p.counts.read, jobs = p.jobs.len(), batches_in_flight = p.pending.len(), "resuming the object where the replica that held it stopped");
        Ok(resume)
    }

    /// The lease was lost or could not be kept: the object is left to whoever holds it now.
    fn abandon(&self, why: &str) {
        tracing::warn!(pipeline = %self.ctx.pipeline.name, file = %self.object.key, "{why}: the object is left to the daemon that takes its lease (no report or move from here)");
    }

    /// Whether the lease still holds by its deadline; said once when it does not.
    fn still_ours(&self) -> bool {
        let ours = self.holding.valid();
        if !ours {
            let why = self.holding.ended().map_or("the lease's deadline passed", |e| e.message());
            self.abandon(why);
        }
        ours
    }

    /// Files the object away by how its run ended; whether its lease may be released.
    async fn file_away(&self, ran: Ran, upload: bool) -> bool {
        let (ctx, object, shared) = (self.ctx, self.object, self.shared);
        let (pipeline, name) = (&ctx.pipeline.name, &object.key);
        match ran {
            Ran::Interrupted | Ran::Blocked { .. } => {
                tracing::info!(pipeline = %pipeline, file = %name, "stopped before the end; resumes later from the ledger (or, if this daemon does not return, on another replica from its lease once it expires)");
                false
            }
            _ if !self.still_ours() => false,
            Ran::AlreadyDone { finished_at } => {
                tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same key and ETag): moving it to processed/ without sending anything");
                self.moved(false).await
            }
            Ran::Finished { result, file_id } => self.finish(result, file_id, upload).await,
            Ran::Crashed { file_id } | Ran::SetAside { file_id: Some(file_id), .. } => {
                let _ = shared.ledger.finish(file_id, FileState::Failed).await;
                self.moved(true).await
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
                self.moved(true).await
            }
        }
    }

    /// Reports up, ledger told, object moved: each step idempotent, in this order, each
    /// only while the lease holds.
    async fn finish(&self, result: Box<FileResult>, file_id: i64, upload: bool) -> bool {
        let (ctx, source, name) = (self.ctx, self.source, &self.object.key);
        if upload {
            let mut files = vec![result.summary_path.clone()];
            files.extend(result.errors_path.clone());
            files.extend(result.warnings_path.clone());
            for f in &files {
                if let Err(e) = source.upload_report(f).await {
                    tracing::error!(file = %name, report = %f.display(), error = %e, "could not upload the report; the object is finished again at the next start");
                    return false;
                }
            }
        }
        let failed = result.file_error.is_some();
        let state = if failed { FileState::Failed } else { FileState::Finished };
        if let Err(e) = self.shared.ledger.finish(file_id, state).await {
            tracing::error!(file = %name, error = %e, "cannot record the file as finished");
            return false;
        }
        // Only now: until the ledger says finished, a restart resumes from these local copies.
        if upload {
            let local = [Some(&result.summary_path), result.errors_path.as_ref()];
            for f in local.into_iter().chain([result.warnings_path.as_ref()]).flatten() {
                let _ = std::fs::remove_file(f);
            }
        }
        if !self.still_ours() {
            return false;
        }
        let ok = self.moved(failed).await;
        let to = if failed { "failed/" } else { "processed/" };
        file::log_done(ctx, self.shared, file_id, name, &result, to);
        ok
    }

    async fn moved(&self, failed: bool) -> bool {
        let name = &self.object.key;
        match self.source.file_away(self.object, failed).await {
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
}
