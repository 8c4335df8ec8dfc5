//! The ledger (SQLite in `state_dir`): what each file is, how far it got, and which remote jobs
//! its batches created, so a restart after `kill -9` resumes instead of resending.
//!
//! One thread owns the connection. Messages queue on a channel; the thread applies everything
//! queued in one transaction (WAL, `synchronous=NORMAL`: a commit survives a process kill;
//! the last one may be lost on power loss, which resume tolerates by redoing a little work).
//! Calls that a next step depends on (a claim, a job id, finishing) wait for their commit.
//! A file may also have a [`Mirror`] (an S3 object's lease): its records go there too.

mod history;
mod mirror;
mod outbox;
mod pace;
mod reader;
mod schema;
mod store;

pub use history::{HistoryEntry, HistoryFilter, NewHistory, Outcome};
pub use outbox::{Due, OutboxRow};
pub use reader::Reader;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::report::RowCounts;
pub use mirror::Mirror;

/// How many queued messages one transaction takes at most.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("ledger {path}: cannot create its folder: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("ledger write failed: {0}")]
    Write(String),
    #[error("the ledger is closed")]
    Closed,
    #[error("{0}")]
    Mirror(String),
    #[error("state_dir {} is in use by another crm-ingest{}: two daemons must not share a state_dir (give each its own)", .dir.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { dir: PathBuf, pid: Option<u32> },
    #[error("{0}")]
    Read(String),
}

/// What makes a file the same file: same pipeline, name, size and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub pipeline: String,
    pub name: String,
    pub size: u64,
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    InProgress,
    Finished,
    Failed,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::InProgress => "in_progress",
            FileState::Finished => "finished",
            FileState::Failed => "failed",
        }
    }
}

/// The settled prefix of a file: rows with `seq < watermark` are settled and, if failed, in
/// the partial errors file, whose first `errors_bytes` bytes are theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub watermark: u64,
    pub errors_bytes: u64,
    /// The same for the warnings report.
    pub warnings_bytes: u64,
    pub counts: RowCounts,
    pub failed_by_stage: BTreeMap<String, u64>,
}

/// A remote job and the rows (by `seq`) it was created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub status: String,
    pub seqs: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Resume {
    pub file_id: i64,
    /// Starts in a row without progress, this one included (1 after a clean stop).
    pub attempts: u32,
    pub report_stem: String,
    pub started_at: String,
    pub checkpoint: Checkpoint,
    pub jobs: Vec<JobRecord>,
    /// Creates that went out (or were about to) without their answer being recorded: the
    /// rows' fate is unknown. Keyed by their write-ahead token.
    pub pending: Vec<(u64, Vec<u64>)>,
    /// Jobs of another replica that held the file, all of whose rows it settled: only
    /// counted (and the first few listed) for the summary, as its progress carried them.
    pub earlier_jobs: crate::report::RemoteJobs,
}

/// What the ledger knows of a file being claimed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "one per file claimed, moved a few times")]
pub enum Claim {
    /// New: recorded now, start from the first row.
    Fresh { file_id: i64, started_at: String },
    /// Started before and not finished: resume from the checkpoint.
    Resume(Resume),
    /// Already imported: do not send anything again.
    Finished { file_id: i64, finished_at: String },
}

type Ack<T> = oneshot::Sender<Result<T, LedgerError>>;

/// What runs after the commit of the transaction that ran a [`Work`], with its error if any.
type Reply = Box<dyn FnOnce(Option<String>) + Send>;
/// SQL of the history and the outbox, run in the owner's transaction.
type Work = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<Reply> + Send>;

enum Msg {
    Claim(Identity, String, Ack<Claim>),
    Sending(i64, u64, Vec<u64>, Ack<()>),
    Abandoned(i64, u64),
    JobStarted(i64, Option<u64>, String, Vec<u64>, String, Ack<()>),
    JobStatus(i64, String, String),
    Checkpoint(i64, Checkpoint, Option<Ack<()>>),
    Stopped(i64),
    Identity(i64, u64, String),
    Adopt(Resume, Ack<()>),
    Finish(i64, FileState, Ack<()>),
    Sync(Ack<()>),
    Work(Work),
}

pub struct Ledger {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Files whose records are also kept elsewhere (S3 objects, in their lease).
    mirrors: Mutex<HashMap<i64, Arc<dyn Mirror>>>,
    pub path: PathBuf,
    /// `state_dir/lock`, held (flock) while this ledger is open: one daemon per state dir.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating and migrating) `state_dir/ledger.sqlite3`. The folder is made 0700 and
    /// the database 0600 whatever the umask: they name the files people dropped. The state
    /// dir is locked first: a second daemon on it is refused, naming the first one's pid.
    pub fn open(state_dir: &Path) -> Result<Self, LedgerError> {
        let dir_err = |source| LedgerError::Dir { path: state_dir.to_path_buf(), source };
        private_dir(state_dir).map_err(dir_err)?;
        let lock = lock_state_dir(state_dir)?;
        let path = state_dir.join("ledger.sqlite3");
        // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
        // database's own mode.
        private_file(&path).map_err(dir_err)?;
        let err = |source| LedgerError::Open { path: path.clone(), source };
        let mut conn = rusqlite::Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        schema::migrate(&mut conn).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || owner(conn, rx))
            .map_err(|e| LedgerError::Dir { path: path.clone(), source: e })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            mirrors: Mutex::default(),
            path,
            _lock: lock,
        })
    }

    pub fn schema_version() -> usize {
        schema::version()
    }

    fn send(&self, msg: Msg) -> Result<(), LedgerError> {
        let guard = self.tx.lock().map_err(|_| LedgerError::Closed)?;
        guard.as_ref().ok_or(LedgerError::Closed)?.send(msg).map_err(|_| LedgerError::Closed)
    }

    async fn ask<T>(&self, make: impl FnOnce(Ack<T>) -> Msg) -> Result<T, LedgerError> {
        let (ack, rx) = oneshot::channel();
        self.send(make(ack))?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// Records a file being taken (or finds it). `stem` names its reports if it is new.
    pub async fn claim(&self, identity: Identity, stem: String) -> Result<Claim, LedgerError> {
        self.ask(|ack| Msg::Claim(identity, stem, ack)).await
    }

    /// The write-ahead record of a create: `seqs` are about to be sent. Returns once
    /// committed; the create goes out only then.
    pub async fn sending(
        &self,
        file_id: i64,
        token: u64,
        seqs: Vec<u64>,
    ) -> Result<(), LedgerError> {
        let mirrored = self.mirror(file_id).map(|m| m.sending(token, &seqs));
        let local = self.ask(|ack| Msg::Sending(file_id, token, seqs, ack));
        both(local, mirrored).await
    }

    /// The create of `token` ended with nothing remote to follow.
    pub fn abandoned(&self, file_id: i64, token: u64) {
        if let Some(m) = self.mirror(file_id) {
            m.abandoned(token);
        }
        let _ = self.send(Msg::Abandoned(file_id, token));
    }

    /// Records a remote job (ending the write-ahead record `token`, if any) before anything
    /// waits on it; returns once committed.
    pub async fn job_started(
        &self,
        file_id: i64,
        token: Option<u64>,
        job_id: &str,
        seqs: Vec<u64>,
        status: &str,
    ) -> Result<(), LedgerError> {
        let mirrored = self.mirror(file_id).map(|m| m.job_started(token, job_id, &seqs, status));
        let (job, status) = (job_id.to_string(), status.to_string());
        let local = self.ask(|ack| Msg::JobStarted(file_id, token, job, seqs, status, ack));
        both(local, mirrored).await
    }

    pub fn job_status(&self, file_id: i64, job_id: &str, status: &str) {
        if let Some(m) = self.mirror(file_id) {
            m.job_status(job_id, status);
        }
        let _ = self.send(Msg::JobStatus(file_id, job_id.to_string(), status.to_string()));
    }

    /// Records a checkpoint; applied in order, without waiting.
    pub fn checkpoint(&self, file_id: i64, cp: Checkpoint) {
        if let Some(m) = self.mirror(file_id) {
            m.checkpoint(&cp);
        }
        let _ = self.send(Msg::Checkpoint(file_id, cp, None));
    }

    /// Records a checkpoint and waits for its commit, from a blocking thread: the step after
    /// it (publishing the report) must never run ahead of it. With a mirror, it waits for the
    /// mirror too, and fails when the mirror says the file may be another process's now.
    pub fn checkpoint_committed(&self, file_id: i64, cp: Checkpoint) -> Result<(), LedgerError> {
        let (ack, rx) = oneshot::channel();
        let mirror = self.mirror(file_id);
        self.send(Msg::Checkpoint(file_id, cp.clone(), Some(ack)))?;
        rx.blocking_recv().map_err(|_| LedgerError::Closed)??;
        match mirror {
            Some(m) => m.checkpoint_committed(&cp).map_err(LedgerError::Mirror),
            None => Ok(()),
        }
    }

    /// From now on the records of `file_id` also go to `mirror`.
    pub fn attach(&self, file_id: i64, mirror: Arc<dyn Mirror>) {
        if let Ok(mut m) = self.mirrors.lock() {
            m.insert(file_id, mirror);
        }
    }

    pub fn detach(&self, file_id: i64) {
        if let Ok(mut m) = self.mirrors.lock() {
            m.remove(&file_id);
        }
    }

    fn mirror(&self, file_id: i64) -> Option<Arc<dyn Mirror>> {
        self.mirrors.lock().ok()?.get(&file_id).cloned()
    }

    /// Replaces what the ledger knows of an unfinished file (its checkpoint, report stem,
    /// jobs and write-ahead records) with `resume`: the progress another replica left in the
    /// object's lease, taken over. Returns once committed.
    pub async fn adopt(&self, resume: Resume) -> Result<(), LedgerError> {
        self.ask(|ack| Msg::Adopt(resume, ack)).await
    }

    /// The file's run stopped in good order (shutdown): not a crash.
    pub fn stopped(&self, file_id: i64) {
        let _ = self.send(Msg::Stopped(file_id));
    }

    /// The file is now `size` bytes with content `hash` (it grew after the claim).
    pub async fn set_identity(&self, file_id: i64, size: u64, hash: String) {
        let _ = self.send(Msg::Identity(file_id, size, hash));
    }

    pub async fn finish(&self, file_id: i64, state: FileState) -> Result<(), LedgerError> {
        self.ask(|ack| Msg::Finish(file_id, state, ack)).await
    }

    /// Waits until everything sent so far is committed (readiness checks, shutdown).
    pub async fn sync(&self) -> Result<(), LedgerError> {
        self.ask(Msg::Sync).await
    }

    /// Commits what is queued and stops the owner thread.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

/// The owner thread: one transaction per burst of messages, acks after the commit.
fn owner(mut conn: rusqlite::Connection, rx: mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Box<dyn FnOnce(Option<String>)>> = Vec::new();
        let started = std::time::Instant::now();
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for msg in batch {
                match msg {
                    Msg::Claim(id, stem, ack) => {
                        let claim = store::claim(&tx, &id, &stem)?;
                        replies.push(Box::new(move |err| {
                            let _ = ack.send(err.map_or(Ok(claim), |e| Err(LedgerError::Write(e))));
                        }));
                    }
                    Msg::Sending(file, token, seqs, ack) => {
                        store::sending(&tx, file, token, &seqs)?;
                        replies.push(unit_reply(ack));
                    }
                    Msg::Abandoned(file, token) => store::abandoned(&tx, file, token)?,
                    Msg::JobStarted(file, token, job, seqs, status, ack) => {
                        if let Some(token) = token {
                            store::abandoned(&tx, file, token)?;
                        }
                        store::job_started(&tx, file, &job, &seqs, &status)?;
                        replies.push(unit_reply(ack));
                    }
                    Msg::JobStatus(file, job, status) => {
                        store::job_status(&tx, file, &job, &status)?
                    }
                    Msg::Checkpoint(file, cp, ack) => {
                        store::checkpoint(&tx, file, &cp)?;
                        if let Some(ack) = ack {
                            replies.push(unit_reply(ack));
                        }
                    }
                    Msg::Stopped(file) => store::stopped(&tx, file)?,
                    Msg::Identity(file, size, hash) => store::identity(&tx, file, size, &hash)?,
                    Msg::Adopt(resume, ack) => {
                        store::adopt(&tx, &resume)?;
                        replies.push(unit_reply(ack));
                    }
                    Msg::Finish(file, state, ack) => {
                        store::finish(&tx, file, state)?;
                        replies.push(unit_reply(ack));
                    }
                    Msg::Sync(ack) => replies.push(unit_reply(ack)),
                    Msg::Work(work) => replies.push(work(&tx)?),
                }
            }
            tx.commit()
        })();
        crate::metrics::get().ledger_write_seconds.observe(started.elapsed().as_secs_f64());
        let err = result.err().map(|e| e.to_string());
        if let Some(e) = &err {
            tracing::error!(error = %e, "ledger write failed");
        }
        for reply in replies {
            reply(err.clone());
        }
    }
}

/// Takes `state_dir/lock` (an exclusive `flock`, released when the process ends however it
/// ends) and writes this process's pid into it for whoever is refused next.
fn lock_state_dir(state_dir: &Path) -> Result<std::fs::File, LedgerError> {
    use std::io::{Read, Seek, Write};
    let path = state_dir.join("lock");
    let dir_err = |source| LedgerError::Dir { path: state_dir.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(dir_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim().parse().ok();
            return Err(LedgerError::Locked { dir: state_dir.to_path_buf(), pid });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(dir_err(e)),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(dir_err)?;
    Ok(file)
}

/// Creates `dir` if need be and makes it 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `path` if it does not exist, and makes it 0600.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        drop(options.open(path)?);
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    drop(options.open(path)?);
    Ok(())
}

/// The ledger's commit and, when there is one, the mirror's: both, at once.
async fn both(
    local: impl std::future::Future<Output = Result<(), LedgerError>>,
    mirrored: Option<futures::future::BoxFuture<'static, ()>>,
) -> Result<(), LedgerError> {
    match mirrored {
        Some(m) => tokio::join!(local, m).0,
        None => local.await,
    }
}

fn unit_reply(ack: Ack<()>) -> Box<dyn FnOnce(Option<String>)> {
    Box::new(move |err| {
        let _ = ack.send(err.map_or(Ok(()), |e| Err(LedgerError::Write(e))));
    })
}
