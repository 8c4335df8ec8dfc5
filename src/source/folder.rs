//! A watched folder: files are taken once closed or moved in (inotify) or once their size and
//! mtime have been stable for `settle`; claimed by renaming into `.processing/`; filed into
//! `processed/` or `failed/` afterwards.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::claims::{Left, SharedClaims};
use crate::config::FolderSettings;
use crate::health::Health;

pub const PROCESSING: &str = ".processing";
pub const PROCESSED: &str = "processed";
pub const FAILED: &str = "failed";

/// A file this daemon has claimed: it sits in `.processing/` until filed.
#[derive(Debug)]
pub struct Claimed {
    pub path: PathBuf,
    pub name: String,
    /// The pipeline slot the file holds while it is processed.
    pub permit: OwnedSemaphorePermit,
    /// Found in `.processing/` at start-up: an earlier run claimed it.
    pub left_by_earlier_run: bool,
}

/// Where a finished file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Processed,
    Failed,
}

#[derive(Debug, Clone)]
pub struct FolderSource {
    pub settings: FolderSettings,
    /// Where this daemon claims files (`.processing/<owner-id>/`); without it (a source only
    /// looked at, never watched) `.processing/` itself.
    claims: Option<SharedClaims>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    stable_since: Instant,
}

/// The watched folder as last seen: which one it is, and the watcher on it.
struct Presence {
    /// Device and inode: a folder deleted and made again is another one.
    id: Option<(u64, u64)>,
    missing: bool,
    watcher: Option<notify::RecommendedWatcher>,
    pokes: mpsc::Sender<Poke>,
}

/// The folder's device and inode; `None` when it is not there (or not a folder).
fn folder_id(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_dir())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        drop(meta);
        Some((0, 0))
    }
}

/// What a file event says about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PokeKind {
    /// Closed after writing, or moved in: the file is whole now.
    Complete,
    /// Created or written to: look again once it settles.
    Changed,
}

#[derive(Debug, Clone)]
struct Poke {
    name: String,
    kind: PokeKind,
}

impl Poke {
    /// Which events matter. Reads (open, access, close after reading) are our own or a
    /// reader's and say nothing: reacting to them made the watcher wake itself forever.
    fn kind_of(kind: &EventKind) -> Option<PokeKind> {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Some(PokeKind::Complete),
            EventKind::Create(_) | EventKind::Modify(_) => Some(PokeKind::Changed),
            _ => None,
        }
    }
}

/// The watcher's view of the folder between scans: what it has seen, and the names ready to
/// claim in order. Lookups are hashed, so a scan stays linear in the folder's size.
#[derive(Debug, Default)]
struct Scan {
    seen: HashMap<String, Seen>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    /// Entries already warned about (a symlink, a FIFO, a name that is not UTF-8).
    warned: HashSet<OsString>,
}

impl Scan {
    fn push(&mut self, name: String) {
        if self.queued.insert(name.clone()) {
            self.queue.push_back(name);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let name = self.queue.pop_front()?;
        self.queued.remove(&name);
        self.seen.remove(&name);
        Some(name)
    }

    fn warn_once(&mut self, name: &OsString, why: &str) {
        if self.warned.insert(name.clone()) {
            tracing::warn!(file = %name.to_string_lossy(), "skipped: {why}");
        }
    }
}

impl FolderSource {
    pub fn new(settings: FolderSettings) -> Self {
        Self { settings, claims: None }
    }

    /// Claims go into this daemon's own folder in `.processing/` ([`super::claims`]).
    pub fn with_claims(mut self, claims: SharedClaims) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Where a claimed file goes.
    fn claims_dir(&self) -> PathBuf {
        let own = self.claims.as_ref().and_then(|c| c.lock().ok().map(|c| c.dir.clone()));
        own.unwrap_or_else(|| self.dir(PROCESSING))
    }

    /// Whether anything is claimed in `.processing/`, by this daemon or another.
    pub fn holds_claims(&self) -> bool {
        fn any_file(dir: &Path, depth: u8) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else { return false };
            entries.flatten().any(|e| {
                let hidden = e.file_name().to_string_lossy().starts_with('.');
                match e.file_type() {
                    Ok(t) if t.is_dir() => depth > 0 && !hidden && any_file(&e.path(), depth - 1),
                    Ok(t) => t.is_file() && !hidden,
                    Err(_) => false,
                }
            })
        }
        any_file(&self.dir(PROCESSING), 1)
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.settings.path.join(sub)
    }

    /// Creates the inbox and its sub-folders.
    pub fn prepare(&self) -> std::io::Result<()> {
        for sub in [PROCESSING, PROCESSED, FAILED] {
            std::fs::create_dir_all(self.dir(sub))?;
        }
        Ok(())
    }

    /// Whether a name is a file to take: matches the pattern, not hidden, not partial.
    pub fn wants(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if name.starts_with('.') || lower.ends_with(".tmp") || lower.ends_with(".part") {
            return false;
        }
        let opts = glob::MatchOptions { case_sensitive: false, ..Default::default() };
        self.settings.patterns.iter().any(|p| p.matches_with(name, opts))
    }

    /// Watches the folder until `cancel`, sending each claimed file. A slot in `slots` is
    /// taken before a file is claimed, so files wait in the inbox while the pipeline is busy;
    /// the next ready file is claimed as soon as a slot frees. While `health` pauses intake
    /// (a disk problem), nothing new is claimed. With `resume`, files an earlier run left in
    /// `.processing/` are sent first (only at start-up: after a reload they belong to the
    /// files still in flight). A folder that disappears is said once (and named by
    /// `/readyz`), and watched again once it is back.
    pub async fn watch(
        self,
        slots: Arc<Semaphore>,
        tx: mpsc::Sender<Claimed>,
        cancel: CancellationToken,
        resume: bool,
        health: Arc<Health>,
        mut paused: watch::Receiver<bool>,
    ) {
        let (poke_tx, mut poke_rx) = mpsc::channel::<Poke>(1024);
        let mut presence = Presence {
            id: folder_id(&self.settings.path),
            missing: false,
            watcher: self.start_watcher(poke_tx.clone()),
            pokes: poke_tx,
        };
        if resume && !self.resume_claimed(&slots, &tx, &cancel).await {
            return;
        }
        let mut scan = Scan::default();
        let tick =
            self.settings.rescan_interval.min(self.settings.settle.max(Duration::from_millis(100)));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let claimable = !scan.queue.is_empty() && !*paused.borrow();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => if self.still_there(&mut presence, &health) {
                    self.rescan(&mut scan)
                },
                Some(poke) = poke_rx.recv() => {
                    let mut pokes = vec![poke];
                    while let Ok(p) = poke_rx.try_recv() {
                        pokes.push(p);
                    }
                    for p in pokes {
                        self.poked(&mut scan, p);
                    }
                }
                changed = paused.changed() => if changed.is_err() { return },
                permit = slots.clone().acquire_owned(), if claimable => {
                    let Ok(permit) = permit else { return };
                    let Some(name) = scan.pop() else { continue };
                    if let Some(claimed) = self.claim(&name, permit) {
                        if tx.send(claimed).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Whether the folder is there to scan. Gone: said once, named by `/readyz`. Back (or
    /// replaced by a new one of the same name): its sub-folders and this daemon's claims
    /// folder made again, and a new watcher on it.
    fn still_there(&self, p: &mut Presence, health: &Health) -> bool {
        let what = self.settings.path.display().to_string();
        match folder_id(&self.settings.path) {
            None => {
                if !p.missing {
                    p.missing = true;
                    tracing::warn!(path = %what, "the inbox folder is missing: nothing is taken from it until it is there again");
                    health.notice(&what, "the inbox folder is missing");
                }
                false
            }
            Some(id) if p.missing || p.id != Some(id) => {
                if let Err(e) = self.repair() {
                    tracing::warn!(path = %what, error = %e, "the inbox folder is back but cannot be prepared; trying again");
                    p.missing = true;
                    return false;
                }
                (p.id, p.missing) = (Some(id), false);
                p.watcher = None;
                p.watcher = self.start_watcher(p.pokes.clone());
                health.notice_cleared(&what);
                tracing::info!(path = %what, "the inbox folder is there again: watching it");
                true
            }
            Some(_) => true,
        }
    }

    /// Makes the sub-folders and this daemon's claims folder (and lock) again.
    fn repair(&self) -> io::Result<()> {
        self.prepare()?;
        match &self.claims {
            Some(c) => c.lock().map_err(|_| io::Error::other("claims lock poisoned"))?.relock(),
            None => Ok(()),
        }
    }

    fn start_watcher(&self, poke: mpsc::Sender<Poke>) -> Option<notify::RecommendedWatcher> {
        let folder = self.settings.path.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            let Some(kind) = Poke::kind_of(&event.kind) else { return };
            for p in &event.paths {
                // Events on the folder itself (our own `read_dir` opens it) say nothing new.
                if p == &folder {
                    continue;
                }
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    let _ = poke.try_send(Poke { name: name.to_string(), kind });
                }
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(mut w) => match w.watch(&self.settings.path, RecursiveMode::NonRecursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(path = %self.settings.path.display(), error = %e, "file events unavailable; relying on the periodic rescan");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; relying on the periodic rescan");
                None
            }
        }
    }

    /// Files in `.processing/` that are this daemon's at start-up (its own claims, and
    /// those [`super::claims`] lets it take) are processed again.
    async fn resume_claimed(
        &self,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<Claimed>,
        cancel: &CancellationToken,
    ) -> bool {
        let Some(claims) = &self.claims else { return true };
        let left = match claims.lock() {
            Ok(c) => c.left_at_start(),
            Err(_) => return true,
        };
        for Left { path, name, ours } in left {
            let permit = tokio::select! {
                _ = cancel.cancelled() => return false,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return false },
            };
            if ours {
                tracing::info!(file = %name, "resuming a file an earlier run had claimed");
            }
            let claimed = Claimed { path, name, permit, left_by_earlier_run: ours };
            if tx.send(claimed).await.is_err() {
                return false;
            }
        }
        true
    }

    /// A file event: a file closed after writing or moved in is ready now; anything else
    /// waits for the next rescan (its size and mtime must then settle).
    fn poked(&self, scan: &mut Scan, poke: Poke) {
        if poke.kind != PokeKind::Complete || !self.wants(&poke.name) {
            return;
        }
        match std::fs::symlink_metadata(self.settings.path.join(&poke.name)) {
            Ok(meta) if meta.is_file() => scan.push(poke.name),
            _ => {}
        }
    }

    /// Looks at every entry of the folder once: files whose size and mtime have been stable
    /// for `settle` join the queue, oldest first. O(entries) per call.
    fn rescan(&self, scan: &mut Scan) {
        let Ok(entries) = std::fs::read_dir(&self.settings.path) else { return };
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut present: HashSet<String> = HashSet::new();
        for entry in entries.flatten() {
            let raw = entry.file_name();
            let Some(name) = raw.to_str().map(String::from) else {
                scan.warn_once(&raw, "its name is not valid UTF-8; rename it to take it");
                continue;
            };
            if !self.wants(&name) {
                continue;
            }
            // Not followed: a symlink or a FIFO is skipped, and said so once.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                let what = if meta.file_type().is_symlink() {
                    "it is a symbolic link; drop the file itself"
                } else {
                    "it is not a regular file"
                };
                scan.warn_once(&raw, what);
                continue;
            }
            let (size, mtime) = (meta.len(), meta.modified().ok());
            let s =
                scan.seen.entry(name.clone()).or_insert(Seen { size, mtime, stable_since: now });
            if s.size != size || s.mtime != mtime {
                *s = Seen { size, mtime, stable_since: now };
            }
            if now.duration_since(s.stable_since) >= self.settings.settle {
                ready.push((mtime, name.clone()));
            }
            present.insert(name);
        }
        scan.seen.retain(|n, _| present.contains(n));
        scan.queued.retain(|n| present.contains(n));
        scan.queue.retain(|n| present.contains(n));
        ready.sort();
        for (_, name) in ready {
            scan.push(name);
        }
    }

    /// Renames the file into `.processing/`; `None` if someone else took it first. A claims
    /// folder removed by hand is made again.
    fn claim(&self, name: &str, permit: OwnedSemaphorePermit) -> Option<Claimed> {
        let from = self.settings.path.join(name);
        let mut to = free_name(&self.claims_dir(), name);
        let mut renamed = std::fs::rename(&from, &to);
        if renamed.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound) && from.exists() {
            if let Err(e) = self.repair() {
                tracing::warn!(file = %name, error = %e, "cannot make .processing/ again");
            }
            to = free_name(&self.claims_dir(), name);
            renamed = std::fs::rename(&from, &to);
        }
        match renamed {
            Ok(()) => {
                let name = to
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| name.to_string());
                tracing::info!(file = %name, "claimed");
                Some(Claimed { path: to, name, permit, left_by_earlier_run: false })
            }
            Err(e) => {
                tracing::debug!(file = %name, error = %e, "could not claim");
                None
            }
        }
    }

    /// Moves a finished file to `processed/` or `failed/`; says where it went, or that it
    /// was not there to move (removed by hand). Idempotent: a copy an earlier, interrupted
    /// move left there is recognised, not copied again under a stamped name. Across file
    /// systems (`EXDEV`) the file is copied, synced, renamed into place, then removed.
    pub fn finish(&self, claimed_path: &Path, name: &str, how: Disposition) -> io::Result<Filed> {
        let source = match std::fs::symlink_metadata(claimed_path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Filed::Gone),
            Err(e) => return Err(e),
        };
        let dir = self.dir(match how {
            Disposition::Processed => PROCESSED,
            Disposition::Failed => FAILED,
        });
        std::fs::create_dir_all(&dir)?;
        // Stamped with the file's own mtime, so a retried move looks at the same names.
        let mtime = source.modified().unwrap_or_else(|_| SystemTime::now());
        let stamp = super::names::stamp(mtime.into());
        for candidate in super::names::candidates(name, &stamp) {
            let to = dir.join(candidate);
            match std::fs::symlink_metadata(&to) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    place(claimed_path, &to, mtime)?;
                    return Ok(Filed::To(to));
                }
                Err(e) => return Err(e),
                Ok(there) if same_file(&source, claimed_path, &there, &to) => {
                    std::fs::remove_file(claimed_path)?;
                    return Ok(Filed::To(to));
                }
                Ok(_) => {}
            }
        }
        Err(io::Error::other(format!("no free name for {name} in {}", dir.display())))
    }
}

/// Where [`FolderSource::finish`] put a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    To(PathBuf),
    /// It was no longer in `.processing/` (someone removed it).
    Gone,
}

/// Renames `from` to `to`; across file systems copies it (mtime kept, synced), renames the
/// copy into place and removes `from`.
fn place(from: &Path, to: &Path, mtime: SystemTime) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(EXDEV) => {}
        other => return other,
    }
    let temp = crate::report::names::temp_beside(to);
    std::fs::copy(from, &temp)?;
    let copy = std::fs::File::options().write(true).open(&temp)?;
    copy.set_modified(mtime)?;
    copy.sync_all()?;
    std::fs::rename(&temp, to)?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    std::fs::remove_file(from)
}

/// `EXDEV`: a rename across file systems.
const EXDEV: i32 = 18;

/// Whether `there` is a copy of `here` an earlier move made: same size, same mtime (a copy
/// keeps it) and same content.
fn same_file(
    here: &std::fs::Metadata,
    here_path: &Path,
    there: &std::fs::Metadata,
    there_path: &Path,
) -> bool {
    if !there.is_file()
        || there.len() != here.len()
        || there.modified().ok() != here.modified().ok()
    {
        return false;
    }
    let hash = |p: &Path| super::identity::hash_file(p).ok();
    hash(here_path).is_some_and(|h| Some(h) == hash(there_path))
}

/// `dir/name`, or with a timestamp before the extension when that name is taken (cut on
/// character boundaries to fit the file system, see [`super::names`]).
pub fn free_name(dir: &Path, name: &str) -> PathBuf {
    let stamp = super::names::stamp(chrono::Utc::now());
    let free = super::names::candidates(name, &stamp).map(|n| dir.join(n)).find(|p| !p.exists());
    free.unwrap_or_else(|| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> FolderSource {
        FolderSource::new(FolderSettings {
            path: PathBuf::from("/nowhere"),
            patterns: vec![
                glob::Pattern::new("*.csv").unwrap(),
                glob::Pattern::new("*.csv.gz").unwrap(),
            ],
            settle: Duration::from_secs(1),
            rescan_interval: Duration::from_secs(5),
        })
    }

    #[test]
    fn which_names_are_taken() {
        let s = source();
        assert!(s.wants("a.csv"));
        assert!(s.wants("A.CSV"));
        assert!(s.wants("a.csv.gz"));
        assert!(!s.wants(".a.csv"));
        assert!(!s.wants("a.csv.part"));
        assert!(!s.wants("a.csv.tmp"));
        assert!(!s.wants("a.txt"));
    }

    #[test]
    fn clashes_get_a_timestamp_before_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv.gz"), b"x").unwrap();
        let p = free_name(dir.path(), "a.csv.gz");
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("a.") && name.ends_with(".csv.gz") && name != "a.csv.gz",
            "{name}"
        );
    }

    #[test]
    fn a_long_non_ascii_name_that_clashes_is_cut_on_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{}.csv", "é".repeat(120));
        std::fs::write(dir.path().join(&name), b"x").unwrap();
        let p = free_name(dir.path(), &name);
        let fitted = p.file_name().unwrap().to_str().unwrap();
        assert!(fitted.len() <= 255 && fitted.ends_with(".csv") && fitted != name, "{fitted}");
        std::fs::write(&p, b"y").unwrap();
    }
}
