//! The folders a running daemon writes to (the ledger's `state_dir`, each folder source, each
//! report folder) must be writable by the user `check` runs as, or `run` would fail after
//! starting (under systemd, restarting in a loop). A folder not there yet must be creatable.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::validate::{Ctx, Purpose};

/// The name of the probe file: hidden and `.tmp`, which a folder source ignores.
const PROBE: &str = ".crm-ingest-check-write.tmp";

impl Ctx<'_> {
    /// A problem when `dir` (what `what` names) cannot be written by this process; `plan`
    /// writes none of these folders and is not asked.
    pub(super) fn writable(&mut self, what: &str, dir: &Path, span: Option<Range<usize>>) {
        if self.purpose == Purpose::Plan {
            return;
        }
        let Err(why) = can_write(dir) else { return };
        let message = format!("{what} {}: {why}", dir.display());
        match span {
            Some(span) => self.problem(span, message),
            None => self.problem_without_line(message),
        }
    }
}

/// Whether files can be created in `dir`, or `dir` created in its nearest existing folder:
/// tried with a probe file, which is what the daemon will do (permissions, ACLs, read-only
/// mounts and `ProtectSystem=` all answer the same way).
pub fn can_write(dir: &Path) -> Result<(), String> {
    let existing = nearest_existing(dir);
    if !existing.is_dir() {
        return Err(format!("{} is not a folder", existing.display()));
    }
    let probe = existing.join(PROBE);
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        // A probe left by a check that was killed: the folder was writable then.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if existing == dir => Err(format!("cannot be written by this user ({e})")),
        Err(e) => Err(format!(
            "cannot be created: {} cannot be written by this user ({e})",
            existing.display()
        )),
    }
}

/// `dir`, or its nearest ancestor that exists.
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => return PathBuf::from("."),
        }
    }
    at.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_or_its_nearest_existing_parent_must_take_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(can_write(dir.path()), Ok(()));
        assert_eq!(can_write(&dir.path().join("not/yet")), Ok(()), "creatable");
        assert!(!dir.path().join(PROBE).exists(), "the probe is removed");
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(can_write(&file.join("x")).unwrap_err().contains("is not a folder"));
        // /proc takes no new files, whoever asks (root included).
        let err = can_write(Path::new("/proc/crm-ingest-state")).unwrap_err();
        assert!(err.starts_with("cannot be created: /proc cannot be written"), "{err}");
    }
}
