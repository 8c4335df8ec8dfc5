//! Running the binary the way a service runs it: as an unprivileged user (when the tests run
//! as root), with the service's umask and environment.

use std::path::Path;
use std::process::{Command, Output};

/// Whether the tests run as root (then commands can run as another user through `setpriv`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `chown -R uid:gid path` (only as root).
pub fn chown(path: &Path, uid: u32, gid: u32) {
    let ok =
        Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(path).status().unwrap();
    assert!(ok.success());
}

/// The binary with `args`, as `uid:gid` with `groups` when root (else as the current user),
/// under `umask`, with only `env` (and PATH) in its environment.
pub fn command_as(
    uid: u32,
    gid: u32,
    groups: &[u32],
    umask: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}"));
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.arg(format!("--groups={}", groups.join(",")));
        }
        c.arg("sh");
        c
    } else {
        Command::new("sh")
    };
    cmd.arg("-c").arg(format!("umask {umask}; exec \"$0\" \"$@\"")).arg(super::bin()).args(args);
    cmd.env_clear().env("PATH", "/usr/bin:/bin").envs(env.iter().copied());
    cmd
}

/// [`command_as`] run to its end.
pub fn run_as(
    uid: u32,
    gid: u32,
    groups: &[u32],
    umask: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    command_as(uid, gid, groups, umask, env, args).output().expect("the binary runs")
}

/// A file's permission bits and group.
pub fn mode_and_group(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.mode() & 0o7777, m.gid())
}
