//! A daemon with the console on, for the console's tests: a token (or none), a webhook whose
//! URL and secret are secrets too, and the three files of
//! [`drop_three`](super::drop_three) finished, with warned.csv (its row saved with a warning).

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crm_ingest::sandbox::SandboxOptions;

pub const TOKEN: &str = "console-Token-0123456789abcdef";
pub const REPSLY_PW: &str = "repsly-Pw-Secret-9911";
pub const HOOK_SECRET: &str = "hook-Signing-Secret-55";
pub const HOOK_PATH: &str = "/services/T000/B000/hookPathSecret77";

pub struct Console {
    pub ops: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub daemon: Option<Daemon>,
    _sandbox: TestSandbox,
}

impl Console {
    /// A daemon with the console on, a token when `token`, and a webhook whose URL and
    /// secret are secrets too; bad.csv (one failed row) and broken.csv (failed) finished.
    pub async fn start(token: bool, latency: Duration) -> Self {
        let sb = TestSandbox::start(SandboxOptions {
            repsly_password: REPSLY_PW.into(),
            latency,
            real: crm_ingest::sandbox::RealApi {
                repsly_warn: Some("Oddly".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("password = \"sandbox\"", "password = \"${REPSLY_PW}\"");
        std::fs::write(&config, text).unwrap();
        let port = free_port();
        let token_line = if token { "token = \"${CONSOLE_TOKEN}\"\n" } else { "" };
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[server]\nlisten = \"127.0.0.1:{port}\"\n{token_line}\n[[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1{HOOK_PATH}\"\nsecret = \"${{HOOK_SECRET}}\"\n"
        ));
        std::fs::write(&config, text).unwrap();
        let env =
            [("REPSLY_PW", REPSLY_PW), ("CONSOLE_TOKEN", TOKEN), ("HOOK_SECRET", HOOK_SECRET)];
        let daemon = Daemon::start_with(&config, &env);
        let inbox = dir.path().join("inbox");
        drop_three(&inbox);
        let warned = format!("{HEADER}\nW1,Oddly Named Shop,yes,w1@example.com,,,\n");
        std::fs::write(inbox.join("warned.csv"), warned).unwrap();
        let done = wait_until_async(Duration::from_secs(60), || {
            files_in(&inbox.join("processed")).len() == 3
                && files_in(&inbox.join("failed")).len() == 1
        })
        .await;
        assert!(done, "{}", daemon.log());
        let console = Self {
            ops: format!("http://127.0.0.1:{port}"),
            dir,
            config,
            daemon: Some(daemon),
            _sandbox: sb,
        };
        let recorded =
            wait_until_async(Duration::from_secs(10), || console.history_len() == 4).await;
        assert!(recorded);
        console
    }

    pub fn history_len(&self) -> usize {
        let db = rusqlite::Connection::open(self.dir.path().join("state/ledger.sqlite3")).unwrap();
        db.query_row("SELECT COUNT(*) FROM history", [], |r| r.get::<_, i64>(0)).unwrap_or(0)
            as usize
    }

    pub fn id_of(&self, file: &str) -> i64 {
        let db = rusqlite::Connection::open(self.dir.path().join("state/ledger.sqlite3")).unwrap();
        db.query_row("SELECT MAX(id) FROM history WHERE file = ?1", [file], |r| r.get(0)).unwrap()
    }

    pub fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    pub fn log(&self) -> String {
        self.daemon.as_ref().unwrap().log()
    }

    pub fn stop(&mut self) -> String {
        let (code, _, log) = self.daemon.take().unwrap().terminate();
        assert_eq!(code, Some(0), "{log}");
        log
    }
}
