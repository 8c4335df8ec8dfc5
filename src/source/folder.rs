//! A watched folder: files are taken once closed or moved in (inotify) or once their size and
//! mtime have been stable for `settle`; claimed by renaming into `.processing/`; filed into
//! `processed/` or `failed/` afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::FolderSettings;

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
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    stable_since: Instant,
}

impl FolderSource {
    pub fn new(settings: FolderSettings) -> Self {
        Self { settings }
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
    /// taken before a file is claimed, so files wait in the inbox while the pipeline is busy.
    /// With `resume`, files an earlier run left in `.processing/` are sent first (only at
    /// start-up: after a reload they belong to the files still in flight).
    pub async fn watch(
        self,
        slots: Arc<Semaphore>,
        tx: mpsc::Sender<Claimed>,
        cancel: CancellationToken,
        resume: bool,
    ) {
        let (poke_tx, mut poke_rx) = mpsc::channel::<(String, bool)>(1024);
        let _watcher = self.start_watcher(poke_tx);
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut closed: HashMap<String, Instant> = HashMap::new();
        // Files a previous run left claimed come first.
        if resume && !self.resume_claimed(&slots, &tx, &cancel).await {
            return;
        }
        let tick =
            self.settings.rescan_interval.min(self.settings.settle.max(Duration::from_millis(100)));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
                Some((name, done)) = poke_rx.recv() => {
                    if done { closed.insert(name, Instant::now()); }
                    while let Ok((name, done)) = poke_rx.try_recv() {
                        if done { closed.insert(name, Instant::now()); }
                    }
                }
            }
            for name in self.ready(&mut seen, &mut closed) {
                let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                if let Some(claimed) = self.claim(&name, permit) {
                    seen.remove(&name);
                    if tx.send(claimed).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn start_watcher(
        &self,
        poke: mpsc::Sender<(String, bool)>,
    ) -> Option<notify::RecommendedWatcher> {
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            // Closed after writing, or moved in: complete now. Anything else: look again.
            let done = matches!(
                event.kind,
                EventKind::Access(notify::event::AccessKind::Close(
                    notify::event::AccessMode::Write
                )) | EventKind::Modify(notify::event::ModifyKind::Name(
                    notify::event::RenameMode::To
                ))
            );
            for p in &event.paths {
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    let _ = poke.try_send((name.to_string(), done));
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

    /// Files in `.processing/` left by an earlier run are processed again.
    async fn resume_claimed(
        &self,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<Claimed>,
        cancel: &CancellationToken,
    ) -> bool {
        let Ok(entries) = std::fs::read_dir(self.dir(PROCESSING)) else { return true };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let permit = tokio::select! {
                _ = cancel.cancelled() => return false,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return false },
            };
            tracing::info!(file = %name, "resuming a file an earlier run had claimed");
            let claimed = Claimed { path: self.dir(PROCESSING).join(&name), name, permit };
            if tx.send(claimed).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Names ready to take, oldest first.
    fn ready(
        &self,
        seen: &mut HashMap<String, Seen>,
        closed: &mut HashMap<String, Instant>,
    ) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.settings.path) else { return Vec::new() };
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(String::from) else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !self.wants(&name) {
                continue;
            }
            present.push(name.clone());
            let (size, mtime) = (meta.len(), meta.modified().ok());
            let s = seen.entry(name.clone()).or_insert(Seen { size, mtime, stable_since: now });
            if s.size != size || s.mtime != mtime {
                *s = Seen { size, mtime, stable_since: now };
                closed.remove(&name);
            }
            let settled = now.duration_since(s.stable_since) >= self.settings.settle;
            if settled || closed.contains_key(&name) {
                ready.push((mtime, name));
            }
        }
        seen.retain(|n, _| present.contains(n));
        closed.retain(|n, _| present.contains(n));
        ready.sort();
        ready.into_iter().map(|(_, n)| n).collect()
    }

    /// Renames the file into `.processing/`; `None` if someone else took it first.
    fn claim(&self, name: &str, permit: OwnedSemaphorePermit) -> Option<Claimed> {
        let from = self.settings.path.join(name);
        let to = free_name(&self.dir(PROCESSING), name);
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                let name = to
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| name.to_string());
                tracing::info!(file = %name, "claimed");
                Some(Claimed { path: to, name, permit })
            }
            Err(e) => {
                tracing::debug!(file = %name, error = %e, "could not claim");
                None
            }
        }
    }

    /// Moves a finished file to `processed/` or `failed/`; returns where it went.
    pub fn finish(
        &self,
        claimed_path: &Path,
        name: &str,
        how: Disposition,
    ) -> std::io::Result<PathBuf> {
        let dir = self.dir(match how {
            Disposition::Processed => PROCESSED,
            Disposition::Failed => FAILED,
        });
        std::fs::create_dir_all(&dir)?;
        let to = free_name(&dir, name);
        std::fs::rename(claimed_path, &to)?;
        Ok(to)
    }
}

/// `dir/name`, or with a timestamp before the extension when that name is taken.
pub fn free_name(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let stem = crate::report::stem_of(name);
    let ext = &name[stem.len()..];
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut n = 0;
    loop {
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        let p = dir.join(format!("{stem}.{stamp}{suffix}{ext}"));
        if !p.exists() {
            return p;
        }
        n += 1;
    }
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
}
