//! `crm-ingest retry`: a file from `failed/` back into its pipeline's inbox, by its history
//! id, its name, or its path in `failed/`. The daemon then imports it as a new file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Settings, SourceSettings};
use crate::ledger::{HistoryFilter, Reader};
use crate::ops::inbox::{self, InboxError};
use crate::say;

pub async fn run(config: PathBuf, what: String) -> ExitCode {
    let settings = match super::load_config(&config, crate::config::Purpose::Check) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (pipeline, name) = match find(&settings, &what) {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    let p = match inbox::pipeline(&settings, &pipeline) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match inbox::retry(&settings, p, &name).await {
        Ok(to) => {
            say!("{name} is back in the inbox of pipeline {pipeline} ({to}); it is imported again as a new file");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: InboxError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        InboxError::Nothing(_) => ExitCode::FAILURE,
        InboxError::Refused(_) => ExitCode::from(super::EXIT_USAGE),
        InboxError::Io(_) => ExitCode::FAILURE,
    }
}

/// The pipeline and file name that `what` means: a history id, a path in a pipeline's
/// `failed/` folder, or a file name the history knows as failed.
fn find(settings: &Settings, what: &str) -> Result<(String, String), InboxError> {
    let reader = Reader::open(&settings.state_dir).map_err(|e| InboxError::Io(e.to_string()))?;
    if let Ok(id) = what.parse::<i64>() {
        let entry = match &reader {
            Some(r) => r.history_entry(id).map_err(|e| InboxError::Io(e.to_string()))?,
            None => None,
        };
        let Some(e) = entry else {
            return Err(InboxError::Nothing(format!("no file with id {id} in the history")));
        };
        if crate::ledger::Outcome::parse(&e.outcome).is_some_and(|o| !o.in_failed()) {
            return Err(InboxError::Nothing(format!(
                "{} ({}) is not in failed/: it finished ({}); to send its failed rows again, fix its errors report and drop that in",
                e.file, e.pipeline, e.outcome
            )));
        }
        return Ok((e.pipeline, e.file));
    }
    if let Some(found) = in_a_failed_folder(settings, Path::new(what)) {
        return Ok(found);
    }
    let name = inbox::clean_name(what)?;
    let filter = HistoryFilter { file: Some(name.clone()), limit: Some(1), ..Default::default() };
    let newest = match &reader {
        Some(r) => r.history(&filter).map_err(|e| InboxError::Io(e.to_string()))?,
        None => Vec::new(),
    };
    match newest.into_iter().next() {
        Some(e) => Ok((e.pipeline, e.file)),
        None => Err(InboxError::Nothing(format!(
            "{what}: not a history id, a file in a pipeline's failed/ folder, or a file the history knows"
        ))),
    }
}

/// `(pipeline, name)` when `path` is a file in a folder pipeline's `failed/`.
fn in_a_failed_folder(settings: &Settings, path: &Path) -> Option<(String, String)> {
    let full = std::fs::canonicalize(path).ok()?;
    let parent = full.parent()?;
    settings.pipelines.iter().find_map(|p| match &p.source {
        SourceSettings::Folder(f) => {
            let failed = std::fs::canonicalize(f.path.join(crate::source::folder::FAILED)).ok()?;
            (failed == parent).then(|| {
                let name = full.file_name()?.to_string_lossy().into_owned();
                Some((p.name.clone(), original_name(&name)))
            })?
        }
        SourceSettings::S3(_) => None,
    })
}

/// `a.20240101T000000.000Z.csv` (a clash copy) was `a.csv`.
fn original_name(name: &str) -> String {
    let re = regex::Regex::new(r"^(.*)\.\d{8}T\d{6}(\.\d+)?Z(-\d+)?(\..*)?$").ok();
    match re.and_then(|r| {
        r.captures(name)
            .map(|c| (c[1].to_string(), c.get(4).map_or("", |m| m.as_str()).to_string()))
    }) {
        Some((stem, ext)) => format!("{stem}{ext}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clash_copies_are_known_by_their_original_name() {
        assert_eq!(original_name("a.20240101T000000.000Z.csv"), "a.csv");
        assert_eq!(original_name("a.20240101T000000.000Z-2.csv.gz"), "a.csv.gz");
        assert_eq!(original_name("plain.csv"), "plain.csv");
    }
}
