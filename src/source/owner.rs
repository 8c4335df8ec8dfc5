//! Which daemon a claim belongs to. Each state dir has one owner id, kept in
//! `state_dir/owner-id` so a restart recognises its own claims: its S3 leases, and its folder
//! claims in `.processing/<owner-id>/`. (The state dir's lock makes it one daemon's.)

use std::path::Path;

/// This daemon's owner id: `host-<16 hex digits>`, made once per state dir and kept in it.
/// Only letters, digits, `.`, `-` and `_`: it names a folder.
pub fn id(state_dir: &Path) -> String {
    let path = state_dir.join("owner-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = safe(id.trim());
        if !id.is_empty() {
            return id;
        }
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| safe(h.trim()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let id = format!("{host}-{:016x}", fastrand::u64(..));
    let _ = std::fs::create_dir_all(state_dir);
    let _ = std::fs::write(&path, &id);
    id
}

/// `text` with every character but ASCII letters, digits, `.`, `-` and `_` left out, at most
/// 100 bytes, and no leading dot (a hidden folder would be skipped).
fn safe(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(100)
        .collect();
    kept.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_id_is_kept_and_names_a_folder_safely() {
        let dir = tempfile::tempdir().unwrap();
        let first = id(dir.path());
        assert_eq!(id(dir.path()), first, "kept across restarts");
        std::fs::write(dir.path().join("owner-id"), "../we ird/..id\n").unwrap();
        assert_eq!(id(dir.path()), "weird..id");
    }
}
