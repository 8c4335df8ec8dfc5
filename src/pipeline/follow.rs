//! A local file read to its real end: when reading reaches the end while another process
//! still holds the file open for writing (a writer that paused longer than `settle`), the
//! reader waits for it and reads what it appends, so no row written after the claim is lost.
//! Writers are found in `/proc/*/fd`; where `/proc` cannot be read, the end is the end.

use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

/// How often a held file is looked at again.
const WAIT: Duration = Duration::from_millis(200);

type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A file that is read to its end and past it while a writer holds it.
pub struct Follow {
    file: tokio::fs::File,
    path: PathBuf,
    /// Whether a writer holds the file (then wait and read on), being found out.
    check: Option<Check>,
    /// No writer is left: one last read takes what it wrote before closing.
    last_read: bool,
}

impl Follow {
    pub fn new(file: tokio::fs::File, path: PathBuf) -> Self {
        Self { file, path, check: None, last_read: false }
    }
}

impl AsyncRead for Follow {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(check) = self.check.as_mut() {
                let held = std::task::ready!(check.as_mut().poll(cx));
                self.check = None;
                if !held {
                    self.last_read = true;
                }
            }
            let before = buf.filled().len();
            std::task::ready!(Pin::new(&mut self.file).poll_read(cx, buf))?;
            if buf.filled().len() > before || self.last_read {
                return Poll::Ready(Ok(()));
            }
            let path = self.path.clone();
            self.check = Some(Box::pin(async move {
                let held =
                    tokio::task::spawn_blocking(move || held_for_writing(&path).unwrap_or(false))
                        .await
                        .unwrap_or(false);
                if held {
                    tokio::time::sleep(WAIT).await;
                }
                held
            }));
        }
    }
}

/// Whether another process has `path` open for writing: `None` when that cannot be told
/// (no `/proc`, or the file is gone).
pub fn held_for_writing(path: &Path) -> Option<bool> {
    let target = std::fs::metadata(path).ok()?;
    let me = std::process::id().to_string();
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let pid = p.file_name();
        let Some(pid) = pid.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            if m.ino() != target.ino() || m.dev() != target.dev() {
                continue;
            }
            let info = p.path().join("fdinfo").join(fd.file_name());
            if opened_for_writing(&std::fs::read_to_string(info).unwrap_or_default()) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// The `flags:` line of `/proc/PID/fdinfo/FD` (octal) says O_WRONLY or O_RDWR.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn fdinfo_flags() {
        assert!(opened_for_writing("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(opened_for_writing("flags:\t02\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
    }

    #[tokio::test]
    async fn a_paused_writer_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "h\n1\n").unwrap();
        // A writer in another process holds the file open and appends after a pause.
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3>>{}; sleep 0.6; echo 2 >&3; sleep 0.3", path.display()))
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(held_for_writing(&path), Some(true));
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut text = String::new();
        Follow::new(file, path.clone()).read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "h\n1\n2\n", "what the writer appended after the pause is read too");
        writer.wait().unwrap();
        assert_eq!(held_for_writing(&path), Some(false));
    }
}
