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

/// Who a service runs as: `uid:gid` with supplementary `groups`, under `umask`.
pub struct User<'a> {
    pub uid: u32,
    pub gid: u32,
    pub groups: &'a [u32],
    pub umask: &'a str,
}

impl User<'_> {
    /// The binary with `args` as this user when the tests run as root (else as the current
    /// user), with only `env` (and PATH) in its environment.
    pub fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            c.arg(format!("--reuid={}", self.uid)).arg(format!("--regid={}", self.gid));
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
        let script = format!("umask {}; exec \"$0\" \"$@\"", self.umask);
        cmd.arg("-c").arg(script).arg(super::bin()).args(args);
        cmd.env_clear().env("PATH", "/usr/bin:/bin").envs(env.iter().copied());
        cmd
    }

    /// [`User::command`] run to its end.
    pub fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.command(env, args).output().expect("the binary runs")
    }
}

/// A file's permission bits and group.
pub fn mode_and_group(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.mode() & 0o7777, m.gid())
}
