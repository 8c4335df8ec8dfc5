//! What a file leaves behind besides its reports, however it ended: its entry in the ledger's
//! history and its notification (queued in the same ledger transaction, without waiting).
//! Also the history's upkeep: entries older than `history_keep` are forgotten.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::config::{Settings, SourceSettings};
use crate::ledger::{NewHistory, Outcome};
use crate::notify::Event;
use crate::pipeline::{FileContext, FileResult};
use crate::report::Summary;

/// How often old history entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How a file that did not run to its end is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub outcome: Outcome,
    /// Its ledger row, when it got one.
    pub file_id: Option<i64>,
}

impl Ended {
    pub fn failed(file_id: Option<i64>) -> Self {
        Self { outcome: Outcome::Failed, file_id }
    }

    pub fn set_aside(file_id: Option<i64>) -> Self {
        Self { outcome: Outcome::SetAside, file_id }
    }
}

/// A file that ran to its end (or failed as a whole while reading).
pub fn ran(shared: &Shared, ctx: &FileContext, file_id: i64, result: &FileResult) {
    let rows = &result.summary.rows;
    let outcome = if result.file_error.is_some() {
        Outcome::Failed
    } else if rows.accepted < rows.read {
        Outcome::RowsFailed
    } else {
        Outcome::Processed
    };
    let ended = Ended { outcome, file_id: Some(file_id) };
    record(shared, ctx, &result.summary, &result.summary_path, ended);
}

/// Records `summary` (written at `path`) in the history and queues the event of how it ended.
pub fn record(shared: &Shared, ctx: &FileContext, summary: &Summary, path: &Path, ended: Ended) {
    let json = serde_json::to_string(summary).unwrap_or_else(|_| "{}".into());
    let entry = NewHistory {
        file_id: ended.file_id,
        pipeline: summary.pipeline.clone(),
        file: summary.file.clone(),
        outcome: ended.outcome,
        finished_at: summary.finished_at.clone(),
        reports: reports_at(ctx),
        summary_file: crate::report::file_name(path),
        summary: json,
    };
    let kind = crate::notify::file_event_kind(ended.outcome);
    let message =
        crate::notify::file_message(&summary.file, &summary.rows, summary.error.as_deref(), kind);
    let event = Event::new(kind, message)
        .pipeline(&summary.pipeline)
        .file(&summary.file)
        .rows(summary.rows.clone(), summary.report.clone());
    shared.notify.file_finished(entry, event);
}

/// Where the file's reports are: its report folder, or the bucket's `reports/` when they
/// are uploaded there.
fn reports_at(ctx: &FileContext) -> String {
    match &ctx.pipeline.source {
        SourceSettings::S3(s) if ctx.pipeline.report_dir.is_none() => {
            format!("s3://{}/{}reports/", s.bucket, s.prefix)
        }
        _ => ctx.report_dir.display().to_string(),
    }
}

/// Forgets history entries older than `history_keep` at start and every hour, until `stop`.
pub async fn keep_history(
    shared: Shared,
    settings: Arc<RwLock<Arc<Settings>>>,
    stop: CancellationToken,
) {
    loop {
        let keep = settings.read().map(|s| s.history_keep).unwrap_or_default();
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Err(e) = shared.ledger.prune_history(cutoff).await {
            tracing::warn!(error = %e, "could not prune the history");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
