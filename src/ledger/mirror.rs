//! A second home for one file's record, outside this machine: an S3 object's lease, so that
//! another replica can resume the object if this one dies (SPEC §7). While a file has a
//! mirror attached, the ledger hands it every write-ahead record, job, status and checkpoint
//! of that file, and the calls a next step depends on (a write-ahead record before its
//! create, a job before its steps) return only once both the ledger and the mirror hold them.

use futures::future::BoxFuture;

use super::Checkpoint;

pub trait Mirror: Send + Sync {
    /// The write-ahead record `token` of a create of `seqs`: resolves once the mirror holds
    /// it. A mirror that can no longer hold anything (its lease was lost) never resolves: the
    /// create must not go out, and the file is being stopped.
    fn sending(&self, token: u64, seqs: &[u64]) -> BoxFuture<'static, ()>;
    /// The create of `token` ended with nothing remote to follow.
    fn abandoned(&self, token: u64);
    /// A remote job (ending the write-ahead record `token`, if any): resolves once held, as
    /// [`Mirror::sending`].
    fn job_started(
        &self,
        token: Option<u64>,
        job: &str,
        seqs: &[u64],
        status: &str,
    ) -> BoxFuture<'static, ()>;
    fn job_status(&self, job: &str, status: &str);
    /// A checkpoint, held from the mirror's next write on.
    fn checkpoint(&self, cp: &Checkpoint);
    /// A checkpoint the next step depends on (publishing the report), from a blocking
    /// thread: `Err` when the mirror could not confirm that this process still has the file
    /// (another replica may have it now), so that step must not happen.
    fn checkpoint_committed(&self, cp: &Checkpoint) -> Result<(), String>;
}
