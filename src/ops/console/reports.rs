//! A finished file's reports, wherever they were written: its report folder, or the bucket's
//! `reports/` for an S3 pipeline that uploads them. Served as they are, byte for byte.

use std::path::PathBuf;

use axum::body::Body;
use tokio_util::io::ReaderStream;

use super::Web;
use crate::config::SourceSettings;
use crate::ledger::HistoryEntry;
use crate::source::s3::S3Source;

/// Bytes of a report read to show its rows (the download has them all).
const SHOWN_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Errors,
    Warnings,
    Summary,
}

impl Which {
    /// Its key in a file's `downloads`.
    pub fn key(self) -> &'static str {
        match self {
            Which::Errors => "errors",
            Which::Warnings => "warnings",
            Which::Summary => "summary",
        }
    }

    /// Its name under `/api/files/{id}/`.
    pub fn file(self) -> &'static str {
        match self {
            Which::Errors => "errors.csv",
            Which::Warnings => "warnings.csv",
            Which::Summary => "summary.json",
        }
    }
}

/// The report's file name, when the file has one.
pub fn name(e: &HistoryEntry, which: Which) -> Option<String> {
    let field = |k: &str| e.summary.get(k).and_then(serde_json::Value::as_str).map(String::from);
    match which {
        Which::Errors => field("report"),
        Which::Warnings => field("warnings"),
        Which::Summary => Some(e.summary_file.clone()).filter(|n| !n.is_empty()),
    }
    // A name from the ledger is still only ever a name.
    .filter(|n| !n.contains('/') && !n.contains('\\') && !n.starts_with('.'))
}

/// Where a report is.
enum At {
    Local(PathBuf),
    S3 { source: Box<S3Source>, key: String },
}

async fn locate(web: &Web, e: &HistoryEntry, which: Which) -> Result<Option<(At, String)>, String> {
    let Some(name) = name(e, which) else { return Ok(None) };
    let Some(rest) = e.reports.strip_prefix("s3://") else {
        return Ok(Some((At::Local(PathBuf::from(&e.reports).join(&name)), name)));
    };
    let settings = web.ops.settings();
    let Some(p) = settings.pipeline(&e.pipeline) else {
        return Err(format!(
            "pipeline `{}` is no longer configured: its bucket is unknown",
            e.pipeline
        ));
    };
    let SourceSettings::S3(s) = &p.source else {
        return Err(format!("pipeline `{}` is no longer on S3", e.pipeline));
    };
    let key = format!("{}{name}", rest.split_once('/').map_or("", |(_, prefix)| prefix));
    let source =
        S3Source::new(s.clone(), s.patterns.clone(), &settings.state_dir, crate::metrics::get())
            .await;
    Ok(Some((At::S3 { source: Box::new(source), key }, name)))
}

/// The report as a body to download, with its file name; `None` when the file has none.
pub async fn open(
    web: &Web,
    e: &HistoryEntry,
    which: Which,
) -> Result<Option<(Body, String)>, String> {
    let Some((at, name)) = locate(web, e, which).await? else { return Ok(None) };
    let body = match at {
        At::Local(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Body::from_stream(ReaderStream::new(file))
        }
        At::S3 { source, key } => {
            let object = get(&source, &key).await?;
            Body::from_stream(ReaderStream::new(object.body.into_async_read()))
        }
    };
    Ok(Some((body, name)))
}

/// The report's first [`SHOWN_BYTES`], to show its rows.
pub async fn read(web: &Web, e: &HistoryEntry, which: Which) -> Result<Option<Vec<u8>>, String> {
    use tokio::io::AsyncReadExt;
    let Some((at, _)) = locate(web, e, which).await? else { return Ok(None) };
    let mut bytes = Vec::new();
    match at {
        At::Local(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.take(SHOWN_BYTES).read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
        }
        At::S3 { source, key } => {
            let object = get(&source, &key).await?;
            let reader = object.body.into_async_read();
            reader.take(SHOWN_BYTES).read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(Some(bytes))
}

async fn get(
    source: &S3Source,
    key: &str,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, String> {
    source.client.get_object().bucket(&source.settings.bucket).key(key).send().await.map_err(|e| {
        format!("s3://{}/{key}: {}", source.settings.bucket, crate::source::s3::describe(&e))
    })
}
