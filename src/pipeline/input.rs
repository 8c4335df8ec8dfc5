//! Where a file's bytes come from: a local path, or a remote object (S3) opened as a stream.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::CsvSettings;
use crate::csvio::{BoxRead, CsvFile, HeaderTest};

/// A remote object that can be streamed from its start (again, after a broken connection).
pub trait RemoteFile: Send + Sync {
    /// The object's name (gzip is recognised by a `.gz` ending).
    fn name(&self) -> &str;
    fn size(&self) -> u64;
    fn open(&self) -> BoxFuture<'_, Result<BoxRead, String>>;
}

/// Why a file did not open: its own bytes (it fails as a whole), or the source's connection
/// broke ([`crate::csvio::SOURCE_BROKE`]: it is read again later, not failed).
#[derive(Debug, Clone)]
pub enum OpenError {
    File(String),
    SourceBroke(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::File(m) | OpenError::SourceBroke(m) => f.write_str(m),
        }
    }
}

impl From<OpenError> for String {
    fn from(e: OpenError) -> Self {
        e.to_string()
    }
}

impl From<crate::csvio::FileError> for OpenError {
    fn from(e: crate::csvio::FileError) -> Self {
        match e {
            crate::csvio::FileError::Interrupted { .. } => OpenError::SourceBroke(e.to_string()),
            e => OpenError::File(e.to_string()),
        }
    }
}

impl From<String> for OpenError {
    fn from(message: String) -> Self {
        OpenError::File(message)
    }
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

    /// A workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`), by its name.
    fn workbook(&self) -> bool {
        let name = match self {
            Input::Local(p) => p.to_string_lossy().into_owned(),
            Input::Remote(r) => r.name().to_string(),
        };
        crate::csvio::workbook::is_workbook(&name)
    }

    /// Opens the bytes and reads the header (see [`CsvFile::from_stream`] for `is_header`);
    /// a workbook's sheet is read as CSV.
    pub async fn open(
        &self,
        settings: &CsvSettings,
        is_header: HeaderTest<'_>,
    ) -> Result<CsvFile, OpenError> {
        if self.workbook() {
            return self.open_workbook(settings, is_header).await;
        }
        match self {
            Input::Local(p) => {
                let file = tokio::fs::File::open(p)
                    .await
                    .map_err(|e| format!("cannot open the file: {e}"))?;
                let follow = super::follow::Follow::new(file, p.clone());
                let size = self.size();
                Ok(CsvFile::from_raw(Box::pin(follow), self.gz(), settings, is_header, size)
                    .await?)
            }
            Input::Remote(r) => {
                let stream = r.open().await?;
                let size = Some(r.size());
                Ok(CsvFile::from_raw(stream, self.gz(), settings, is_header, size).await?)
            }
        }
    }
}

impl Input {
    /// A workbook needs its whole file at hand (its index is at the end): a remote one is
    /// first copied to a temp file.
    async fn open_workbook(
        &self,
        settings: &CsvSettings,
        is_header: HeaderTest<'_>,
    ) -> Result<CsvFile, OpenError> {
        let (path, _keep) = match self {
            Input::Local(p) => (p.clone(), None),
            Input::Remote(r) => {
                let tmp = tempfile_for(r.name())?;
                let mut body = r.open().await?;
                let mut out =
                    tokio::fs::File::create(tmp.path()).await.map_err(|e| e.to_string())?;
                tokio::io::copy(&mut body, &mut out).await.map_err(|e| match e.kind() {
                    crate::csvio::SOURCE_BROKE => OpenError::SourceBroke(e.to_string()),
                    _ => OpenError::File(e.to_string()),
                })?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let (stream, errors) = crate::csvio::workbook::open(&path, settings.sheet.clone())?;
        let bytes_read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let file = CsvFile::from_stream(stream, settings, is_header, bytes_read, 1 << 20).await?;
        Ok(file.with_cell_errors(errors))
    }
}

/// A private temp file for a downloaded workbook, removed when dropped.
fn tempfile_for(name: &str) -> Result<TempPath, String> {
    let dir = std::env::temp_dir().join(format!("crm-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let short =
        crate::report::names::shorten(&crate::report::file_name(std::path::Path::new(name)), 100);
    Ok(TempPath(dir.join(format!("{:08x}-{short}", fastrand::u32(..)))))
}

/// Removes its file when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
