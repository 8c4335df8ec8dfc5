//! Where a file's bytes come from: a local path, or a remote object (S3) opened as a stream.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::CsvSettings;
use crate::csvio::{BoxRead, CsvFile};

/// A remote object that can be streamed from its start (again, after a broken connection).
pub trait RemoteFile: Send + Sync {
    /// The object's name (gzip is recognised by a `.gz` ending).
    fn name(&self) -> &str;
    fn size(&self) -> u64;
    fn open(&self) -> BoxFuture<'_, Result<BoxRead, String>>;
}

#[derive(Clone)]
pub enum Input {
    Local(PathBuf),
    Remote(Arc<dyn RemoteFile>),
}

impl Input {
    fn gz(&self) -> bool {
        let name = match self {
            Input::Local(p) => p.to_string_lossy().into_owned(),
            Input::Remote(r) => r.name().to_string(),
        };
        name.to_ascii_lowercase().ends_with(".gz")
    }

    /// Size in bytes, for progress.
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Local(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Remote(r) => Some(r.size()),
        }
    }

    /// Opens the bytes and reads the header.
    pub async fn open(&self, settings: &CsvSettings) -> Result<CsvFile, String> {
        match self {
            Input::Local(p) => {
                let file = tokio::fs::File::open(p)
                    .await
                    .map_err(|e| format!("cannot open the file: {e}"))?;
                let follow = super::follow::Follow::new(file, p.clone());
                let size = self.size();
                CsvFile::from_raw(Box::pin(follow), self.gz(), settings, size)
                    .await
                    .map_err(|e| e.to_string())
            }
            Input::Remote(r) => {
                let stream = r.open().await?;
                CsvFile::from_raw(stream, self.gz(), settings, Some(r.size()))
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}
