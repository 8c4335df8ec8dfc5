//! A pipeline's inbox from outside the daemon: put an uploaded file in, or take a file back
//! out of `failed/` (`retry`), on a folder or an S3 prefix. Either way the file then goes
//! the normal way: the watcher finds it, settles it, claims it.

use std::path::{Path, PathBuf};

use crate::config::{PipelineSettings, Settings, SourceSettings};
use crate::source::s3::S3Source;

/// The longest file name taken from an upload.
const MAX_NAME_BYTES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Nothing to act on (retry: not in `failed/`): exit 1, HTTP 404/409.
    #[error("{0}")]
    Nothing(String),
    /// The request cannot be done as asked (a bad name, an unknown pipeline): HTTP 400.
    #[error("{0}")]
    Refused(String),
    /// The folder or bucket failed us.
    #[error("{0}")]
    Io(String),
}

/// A file name from a client: the last path component, without control characters, not
/// hidden, not `.`/`..`, at most [`MAX_NAME_BYTES`]. Never a path.
pub fn clean_name(raw: &str) -> Result<String, InboxError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let refuse =
        |why: &str| Err(InboxError::Refused(format!("file name `{}`: {why}", raw.escape_debug())));
    if last.is_empty() || last == "." || last == ".." {
        return refuse("no file name");
    }
    if last.starts_with('.') {
        return refuse("a hidden name (starting with `.`) is never picked up");
    }
    if last.chars().any(|c| c.is_control()) {
        return refuse("control characters are not allowed");
    }
    if last.len() > MAX_NAME_BYTES {
        return refuse("longer than 200 bytes");
    }
    Ok(last.to_string())
}

pub fn pipeline<'a>(
    settings: &'a Settings,
    name: &str,
) -> Result<&'a PipelineSettings, InboxError> {
    settings.pipeline(name).map(|p| p.as_ref()).ok_or_else(|| {
        let names: Vec<&str> = settings.pipelines.iter().map(|p| p.name.as_str()).collect();
        InboxError::Refused(format!("no pipeline named `{name}` (defined: {})", names.join(", ")))
    })
}

/// Whether the pipeline's source would take a file of this name.
pub fn takes(p: &PipelineSettings, name: &str) -> Result<(), InboxError> {
    let patterns = match &p.source {
        SourceSettings::Folder(f) => &f.patterns,
        SourceSettings::S3(s) => &s.patterns,
    };
    let lower = name.to_ascii_lowercase();
    let opts = glob::MatchOptions { case_sensitive: false, ..Default::default() };
    let matches = patterns.iter().any(|g| g.matches_with(name, opts));
    if !matches || lower.ends_with(".tmp") || lower.ends_with(".part") {
        let list: Vec<&str> = patterns.iter().map(|g| g.as_str()).collect();
        return Err(InboxError::Refused(format!(
            "pipeline `{}` takes {} files; `{name}` would never be picked up",
            p.name,
            list.join(", ")
        )));
    }
    Ok(())
}

/// Moves a fully written local file into the pipeline's inbox as `name`; where it went.
/// A name already waiting in the inbox is refused rather than replaced.
pub async fn deliver_upload(
    settings: &Settings,
    p: &PipelineSettings,
    name: &str,
    staged: &Path,
) -> Result<String, InboxError> {
    match &p.source {
        SourceSettings::Folder(f) => {
            let to = f.path.join(name);
            // A hard link fails on an existing name: no check-then-rename race.
            std::fs::hard_link(staged, &to).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => InboxError::Refused(format!(
                    "{name} is already waiting in the inbox of pipeline `{}`",
                    p.name
                )),
                _ => InboxError::Io(format!("cannot put {name} into {}: {e}", f.path.display())),
            })?;
            let _ = std::fs::remove_file(staged);
            Ok(to.display().to_string())
        }
        SourceSettings::S3(s) => {
            let source = s3(settings, p).await?;
            let key = format!("{}{name}", s.prefix);
            if source.exists(&key).await.map_err(InboxError::Io)? {
                return Err(InboxError::Refused(format!("s3://{}/{key} already exists", s.bucket)));
            }
            let body = aws_sdk_s3::primitives::ByteStream::from_path(staged)
                .await
                .map_err(|e| InboxError::Io(e.to_string()))?;
            source
                .client
                .put_object()
                .bucket(&s.bucket)
                .key(&key)
                .body(body)
                .send()
                .await
                .map_err(|e| InboxError::Io(crate::source::s3::describe(&e)))?;
            let _ = std::fs::remove_file(staged);
            Ok(format!("s3://{}/{key}", s.bucket))
        }
    }
}

/// Puts `name` of pipeline `p` back from `failed/` into its inbox; where it went.
pub async fn retry(
    settings: &Settings,
    p: &PipelineSettings,
    name: &str,
) -> Result<String, InboxError> {
    match &p.source {
        SourceSettings::Folder(f) => {
            let failed = f.path.join(crate::source::folder::FAILED);
            let Some(from) = newest_copy(&failed, name) else {
                return Err(InboxError::Nothing(format!(
                    "{name} is not in {} (nothing to retry)",
                    failed.display()
                )));
            };
            let to = f.path.join(name);
            if to.exists() {
                return Err(InboxError::Nothing(format!("{name} is already back in the inbox")));
            }
            std::fs::rename(&from, &to)
                .map_err(|e| InboxError::Io(format!("cannot move {}: {e}", from.display())))?;
            Ok(to.display().to_string())
        }
        SourceSettings::S3(s) => {
            let source = s3(settings, p).await?;
            let Some(from) = newest_key(&source, name).await? else {
                return Err(InboxError::Nothing(format!(
                    "{name} is not in s3://{}/{}failed/ (nothing to retry)",
                    s.bucket, s.prefix
                )));
            };
            let to = format!("{}{name}", s.prefix);
            copy_then_delete(&source, &from, &to).await?;
            Ok(format!("s3://{}/{to}", s.bucket))
        }
    }
}

/// The copy of `name` in `failed/`: the name itself, else the newest with a clash
/// timestamp (`stem.<stamp>.ext`).
fn newest_copy(failed: &Path, name: &str) -> Option<PathBuf> {
    let exact = failed.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    let (stem, ext) = split(name);
    std::fs::read_dir(failed)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{stem}."))
                && n.ends_with(ext)
                && n.len() > stem.len() + ext.len()
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// `a.csv.gz` -> (`a`, `.csv.gz`).
fn split(name: &str) -> (String, &str) {
    let stem = crate::report::stem_of(name);
    let ext = name.get(stem.len()..).unwrap_or("");
    (stem, ext)
}

async fn s3(settings: &Settings, p: &PipelineSettings) -> Result<S3Source, InboxError> {
    let SourceSettings::S3(s) = &p.source else {
        return Err(InboxError::Refused(format!("pipeline `{}` is not on S3", p.name)));
    };
    Ok(S3Source::new(s.clone(), s.patterns.clone(), &settings.state_dir, crate::metrics::get())
        .await)
}

async fn newest_key(source: &S3Source, name: &str) -> Result<Option<String>, InboxError> {
    let s = &source.settings;
    let exact = format!("{}{}{name}", s.prefix, crate::source::s3::FAILED);
    if source.exists(&exact).await.map_err(InboxError::Io)? {
        return Ok(Some(exact));
    }
    let (stem, ext) = split(name);
    let listed = source
        .client
        .list_objects_v2()
        .bucket(&s.bucket)
        .prefix(format!("{}{}{stem}.", s.prefix, crate::source::s3::FAILED))
        .send()
        .await
        .map_err(|e| InboxError::Io(crate::source::s3::describe(&e)))?;
    Ok(listed
        .contents()
        .iter()
        .filter(|o| o.key().is_some_and(|k| k.ends_with(ext)))
        .max_by_key(|o| o.last_modified().map(|t| t.secs()))
        .and_then(|o| o.key().map(str::to_string)))
}

async fn copy_then_delete(source: &S3Source, from: &str, to: &str) -> Result<(), InboxError> {
    let bucket = &source.settings.bucket;
    let io = |e| InboxError::Io(e);
    source
        .client
        .copy_object()
        .bucket(bucket)
        .copy_source(format!("{bucket}/{}", crate::source::s3::encode_key(from)))
        .key(to)
        .send()
        .await
        .map_err(|e| io(crate::source::s3::describe(&e)))?;
    source
        .client
        .delete_object()
        .bucket(bucket)
        .key(from)
        .send()
        .await
        .map_err(|e| io(crate::source::s3::describe(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_lose_their_paths_and_hidden_or_odd_ones_are_refused() {
        assert_eq!(clean_name("clients.csv").unwrap(), "clients.csv");
        assert_eq!(clean_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\list.csv").unwrap(), "list.csv");
        for bad in ["", "..", "dir/..", ".hidden.csv", "a\u{0}.csv", "a\nb.csv", "x/"] {
            assert!(clean_name(bad).is_err(), "{bad:?}");
        }
        assert!(clean_name(&"a".repeat(201)).is_err());
    }

    #[test]
    fn the_newest_clash_copy_is_found() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_copy(dir.path(), "a.csv"), None);
        std::fs::write(dir.path().join("a.20240101T000000.000Z.csv"), "x").unwrap();
        std::fs::write(dir.path().join("ab.csv"), "x").unwrap();
        let found = newest_copy(dir.path(), "a.csv").unwrap();
        assert!(found.ends_with("a.20240101T000000.000Z.csv"), "{found:?}");
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        assert!(newest_copy(dir.path(), "a.csv").unwrap().ends_with("a.csv"));
    }

    proptest! {
        #[test]
        fn a_clean_name_is_never_a_path(raw in "\\PC{0,80}") {
            if let Ok(name) = clean_name(&raw) {
                prop_assert!(!name.contains('/') && !name.contains('\\'));
                prop_assert!(name != ".." && !name.starts_with('.') && !name.is_empty());
                prop_assert!(Path::new(&name).components().count() == 1);
            }
        }
    }
}
