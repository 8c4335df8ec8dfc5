//! Report files hold personal data: created 0600, written to a temp name, renamed into place.
//! A pipeline's `report_mode` may widen the published file's mode (`0640`); the file then
//! takes the report folder's group, so a setgid folder of the people who fix the rows lets
//! them read it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The mode of every report unless `report_mode` says otherwise.
pub const PRIVATE: u32 = 0o600;

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

/// Makes a finished temp file visible under its real name, with `mode` (and, when the mode
/// lets a group read, the folder's group) set before it appears.
pub fn publish(file: File, tmp: &Path, target: &Path, mode: u32) -> io::Result<()> {
    share(&file, target, mode)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, target)
}

/// Sets a widened `mode` on a report; with group bits, the group of `target`'s folder. The
/// mode is set explicitly, so the process umask (`UMask=0077` in the unit) does not narrow it.
fn share(file: &File, target: &Path, mode: u32) -> io::Result<()> {
    if mode == PRIVATE {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if mode & 0o070 != 0 {
            let folder = target.parent().unwrap_or(Path::new("."));
            let group = std::fs::metadata(folder)?.gid();
            if file.metadata()?.gid() != group {
                // Not a member of the folder's group: the file keeps ours, and says so once.
                if let Err(e) = std::os::unix::fs::fchown(file, None, Some(group)) {
                    tracing::warn!(folder = %folder.display(), group, error = %e, "a report cannot take its folder's group (is the service user a member?); it keeps the service's group");
                }
            }
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Writes `bytes` to `target` atomically, created 0600 and published with `mode`.
pub fn write_private(target: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (mut file, tmp) = create_private(target)?;
    let result = file.write_all(bytes).and_then(|()| publish(file, &tmp, target, mode));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
