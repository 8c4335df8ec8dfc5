//! Report files hold personal data: created 0600, written to a temp name, renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A hidden temp file beside `target`, created with mode 0600.
pub fn create_private(target: &Path) -> io::Result<(File, PathBuf)> {
    let tmp = super::names::temp_beside(target);
    Ok((create_private_at(&tmp)?, tmp))
}

/// Creates (or truncates) `path` with mode 0600, and its folder if needed.
pub fn create_private_at(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a finished temp file visible under its real name.
pub fn publish(file: File, tmp: &Path, target: &Path) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, target)
}

/// Writes `bytes` to `target` atomically with mode 0600.
pub fn write_private(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let (mut file, tmp) = create_private(target)?;
    let result = file.write_all(bytes).and_then(|()| publish(file, &tmp, target));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
