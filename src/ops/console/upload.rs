//! An upload, streamed to a hidden staging file (never held in memory) and then put into the
//! pipeline's inbox under its own (cleaned) name. Nothing is written before the request is
//! known to be allowed: a form's `csrf` field must come before its `file`.

use std::path::PathBuf;

use axum::extract::multipart::Field;
use axum::extract::Multipart;
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;

use super::api::inbox_error;
use super::auth::{Refused, Who};
use super::Web;
use crate::config::{PipelineSettings, Settings, SourceSettings};
use crate::ops::inbox;

type Failure = (StatusCode, String);

fn bad(e: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, format!("the upload broke off: {e}"))
}

/// Takes the multipart body; the file's name and where it went.
pub async fn receive(
    web: &Web,
    who: &Who,
    pipeline: &str,
    mut multipart: Multipart,
) -> Result<(String, String), Failure> {
    let refused = |Refused(code, why)| (code, why);
    if !who.may_write() {
        // Refused before a byte of the body is read.
        who.write(None).map_err(refused)?;
    }
    let settings = web.ops.settings();
    let p = inbox::pipeline(&settings, pipeline).map_err(inbox_error)?;
    let mut csrf: Option<String> = None;
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(bad)?),
            Some("file") => {
                who.write(csrf.as_deref()).map_err(refused)?;
                let raw = field.file_name().unwrap_or("").to_string();
                let name = inbox::clean_name(&raw).map_err(inbox_error)?;
                inbox::takes(p, &name).map_err(inbox_error)?;
                let staged = stage(&settings, p, field).await?;
                let delivered = inbox::deliver_upload(&settings, p, &name, &staged).await;
                let _ = std::fs::remove_file(&staged);
                return delivered.map(|to| (name, to)).map_err(inbox_error);
            }
            _ => {}
        }
    }
    Err((StatusCode::BAD_REQUEST, "no `file` field in the upload".into()))
}

/// Where an upload is written before it goes into the inbox: beside it (hidden, `.part`, so
/// the watcher ignores it, and on the same disk, so it moves in at once), or in the state
/// folder for a bucket.
fn staging(settings: &Settings, p: &PipelineSettings) -> PathBuf {
    let id = crate::notify::event_id();
    match &p.source {
        SourceSettings::Folder(f) => f.path.join(format!(".upload-{id}.part")),
        SourceSettings::S3(_) => settings.state_dir.join("uploads").join(format!("{id}.part")),
    }
}

async fn stage(
    settings: &Settings,
    p: &PipelineSettings,
    mut field: Field<'_>,
) -> Result<PathBuf, Failure> {
    let path = staging(settings, p);
    let io = |e: std::io::Error| {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot stage the upload: {e}"))
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut size: usize = 0;
    let written = async {
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            size = size.saturating_add(chunk.len());
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        if size == 0 {
            return Err((StatusCode::BAD_REQUEST, "the file is empty".to_string()));
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(e)
        }
    }
}
