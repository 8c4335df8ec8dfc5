//! Claims in a watched folder name their owner, so several daemons (each with its own state
//! dir) can share one folder: a daemon claims into `.processing/<owner-id>/` and holds an
//! exclusive `flock` on `.processing/.<owner-id>.lock` for as long as it runs. At start-up it
//! resumes its own claims, takes files left directly in `.processing/` (the layout before
//! owners), and takes over another owner's claims only when that owner's lock is free: no
//! process holds it, so that daemon is not running. Its ledger is not here, so such a file is
//! sent again from its first row (said at WARN). The lock is released by the kernel however
//! the daemon ends, `kill -9` included.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::folder::PROCESSING;

/// This daemon's claims in one folder, and the lock that says it is running.
#[derive(Debug)]
pub struct Claims {
    /// `.processing/<owner-id>/`: where this daemon claims files.
    pub dir: PathBuf,
    pub owner: String,
    lock: Option<File>,
}

/// Shared by every generation of a folder's watcher (a reload keeps the lock).
pub type SharedClaims = Arc<Mutex<Claims>>;

/// A file found in `.processing/` at start-up, to be processed.
#[derive(Debug)]
pub struct Left {
    pub path: PathBuf,
    pub name: String,
    /// Claimed by this daemon (or before owners): its ledger should know it.
    pub ours: bool,
}

impl Claims {
    /// Takes `folder`'s claims folder for `owner`; an error if another process holds it (a
    /// second daemon with the same owner id: a copied state dir).
    pub fn take(folder: &Path, owner: &str) -> io::Result<SharedClaims> {
        let mut me =
            Self { dir: folder.join(PROCESSING).join(owner), owner: owner.into(), lock: None };
        me.relock()?;
        Ok(Arc::new(Mutex::new(me)))
    }

    /// (Re)creates the claims folder and takes the lock anew: after the folder was deleted
    /// and made again, the old lock is on a file that is gone.
    pub fn relock(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let processing = self.dir.parent().unwrap_or(Path::new("."));
        if self
            .lock
            .as_ref()
            .is_some_and(|held| same_inode(held, &lock_path(processing, &self.owner)))
        {
            // Still the lock file this daemon holds: nothing to take again.
            return Ok(());
        }
        self.lock = None;
        match try_lock(processing, &self.owner)? {
            Some(lock) => {
                self.lock = Some(lock);
                Ok(())
            }
            None => Err(io::Error::other(format!(
                "{} is held by another running crm-ingest with the same owner id ({}): was its state_dir copied? Give each daemon its own state_dir, with no owner-id file in it",
                self.dir.display(),
                self.owner
            ))),
        }
    }

    /// What is left in `.processing/` at start-up and is this daemon's to process: its own
    /// claims, files from before owners (moved into its folder), and the claims of owners that
    /// are not running (moved into its folder, said at WARN). Sorted by name.
    pub fn left_at_start(&self) -> Vec<Left> {
        let mut left = Vec::new();
        let processing = self.dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        for (path, name) in files_in(&self.dir) {
            left.push(Left { path, name, ours: true });
        }
        for (path, name) in files_in(&processing) {
            if let Some(moved) = self.adopt(&path, &name) {
                left.push(Left { name: file_name(&moved), path: moved, ours: true });
            }
        }
        for (other, owner) in owner_dirs(&processing, &self.owner) {
            left.extend(self.take_over(&processing, &other, &owner));
        }
        left.sort_by(|a, b| a.name.cmp(&b.name));
        left
    }

    /// Another owner's claims, if that owner is not running.
    fn take_over(&self, processing: &Path, other: &Path, owner: &str) -> Vec<Left> {
        let files = files_in(other);
        let lock = match try_lock(processing, owner) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                if !files.is_empty() {
                    tracing::info!(
                        owner,
                        files = files.len(),
                        "leaving the files another running daemon has claimed in this folder"
                    );
                }
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(owner, error = %e, "cannot tell whether the daemon that claimed these files still runs; leaving them");
                return Vec::new();
            }
        };
        let mut taken = Vec::new();
        for (path, name) in files {
            tracing::warn!(file = %name, previous_owner = owner, "taking over a file claimed by a daemon that no longer runs (its lock is free); its progress is in that daemon's ledger, not here, so it is sent again from its first row");
            if let Some(moved) = self.adopt(&path, &name) {
                taken.push(Left { name: file_name(&moved), path: moved, ours: false });
            }
        }
        // Emptied: the folder and its lock go (a daemon of that owner starting again makes
        // them anew).
        let _ = std::fs::remove_dir(other);
        let _ = std::fs::remove_file(lock_path(processing, owner));
        drop(lock);
        taken
    }

    /// Moves a file into this daemon's claims folder; `None` if another daemon took it first.
    fn adopt(&self, path: &Path, name: &str) -> Option<PathBuf> {
        let to = super::folder::free_name(&self.dir, name);
        match std::fs::rename(path, &to) {
            Ok(()) => Some(to),
            Err(e) => {
                tracing::debug!(file = %name, error = %e, "could not take a file from .processing/");
                None
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether `path` is the file `held` is open on.
fn same_inode(held: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(a), Ok(b)) = (held.metadata(), std::fs::metadata(path)) else { return false };
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (held, path);
        false
    }
}

/// `.processing/.<owner>.lock`.
fn lock_path(processing: &Path, owner: &str) -> PathBuf {
    processing.join(format!(".{owner}.lock"))
}

/// The owner's lock, if no process holds it.
fn try_lock(processing: &Path, owner: &str) -> io::Result<Option<File>> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(processing, owner))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The regular files directly in `dir` whose names are UTF-8 and not hidden.
fn files_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.path(), e.file_name().to_str()?.to_string())))
        .filter(|(_, n)| !n.starts_with('.'))
        .collect()
}

/// The other owners' claims folders in `.processing/`: (folder, owner id).
fn owner_dirs(processing: &Path, me: &str) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(processing) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.path(), e.file_name().to_str()?.to_string())))
        .filter(|(_, n)| n != me && !n.starts_with('.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_owner_keeps_its_claims_and_a_gone_one_is_taken_over() {
        let folder = tempfile::tempdir().unwrap();
        let a = Claims::take(folder.path(), "a").unwrap();
        std::fs::write(a.lock().unwrap().dir.join("x.csv"), "x").unwrap();
        let b = Claims::take(folder.path(), "b").unwrap();
        assert!(b.lock().unwrap().left_at_start().is_empty(), "a runs: its claim stays");
        assert!(Claims::take(folder.path(), "a").is_err(), "one holder per owner");
        drop(a);
        let left = b.lock().unwrap().left_at_start();
        assert_eq!(left.len(), 1);
        assert!(!left[0].ours && left[0].path.starts_with(folder.path().join(".processing/b")));
        // Before owners, files sat directly in .processing/.
        std::fs::write(folder.path().join(".processing/old.csv"), "o").unwrap();
        let left = b.lock().unwrap().left_at_start();
        assert!(left.iter().any(|l| l.ours && l.name == "old.csv"), "{left:?}");
    }
}
