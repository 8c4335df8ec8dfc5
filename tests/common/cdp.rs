//! Debian's `chromium`, headless, driven through the DevTools protocol over
//! `--remote-debugging-pipe`: commands go in on its file descriptor 3 and answers come out
//! of 4, as NUL-terminated JSON, so no websocket client is needed. A shell hands it our
//! stdin and stdout as those descriptors.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The flags NOTES.md and the machine notes give: no sandbox as root, and nothing that
/// reaches for the network by itself.
const FLAGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --disable-quic --no-first-run --no-default-browser-check --hide-scrollbars --window-size=1280,900";

pub struct Browser {
    child: Child,
    input: ChildStdin,
    answers: mpsc::Receiver<Value>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Chromium, or `None` (the test skips, saying why) where it is not installed.
    pub fn launch_or_skip() -> Option<Self> {
        if !super::have_tool("chromium", "apt-get install -y chromium") {
            return None;
        }
        Some(Self::launch())
    }

    pub fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let script = format!(
            "exec chromium {FLAGS} --user-data-dir='{}' --remote-debugging-pipe about:blank 3<&0 4>&1 0</dev/null 1>/dev/null",
            profile.path().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&message[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self { child, input, answers, next: 0, _profile: profile }
    }

    /// Sends a command (to a page's session when given) and waits for its answer.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer =
                self.answers.recv_timeout(left).unwrap_or_else(|_| panic!("no answer to {method}"));
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// A new tab, attached.
    pub fn page(&mut self) -> Page<'_> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let mut page = Page { browser: self, session };
        page.call("Page.enable", json!({}));
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        page
    }
}

pub struct Page<'a> {
    browser: &'a mut Browser,
    session: String,
}

impl Page<'_> {
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.browser.call(Some(&session), method, params)
    }

    /// Goes to `url` and waits until the page has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.settle();
    }

    /// Waits for the document that is now loading (after a click that navigates) to load.
    pub fn settle(&mut self) {
        std::thread::sleep(Duration::from_millis(100));
        assert!(self.wait_for("document.readyState === 'complete'", Duration::from_secs(30)));
    }

    /// The value of a JavaScript expression (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    pub fn text(&mut self, selector: &str) -> String {
        let js = format!("(document.querySelector({selector:?}) || {{}}).innerText || ''");
        self.eval(&js).as_str().unwrap_or("").to_string()
    }

    /// Polls `condition` (a JavaScript expression) every 100 ms until it is true.
    pub fn wait_for(&mut self, condition: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.eval(&format!("!!({condition})")) == Value::Bool(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn click(&mut self, selector: &str) {
        let clicked = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.click(); return true; }})()"
        ));
        assert_eq!(clicked, Value::Bool(true), "nothing to click at {selector}");
    }

    /// Puts a local file into a file input, as choosing it in the dialog would.
    pub fn choose_file(&mut self, selector: &str, file: &Path) {
        let root = self.call("DOM.getDocument", json!({}));
        let node = self.call(
            "DOM.querySelector",
            json!({ "nodeId": root["root"]["nodeId"], "selector": selector }),
        );
        assert_ne!(node["nodeId"], 0, "no file input at {selector}");
        self.call(
            "DOM.setFileInputFiles",
            json!({ "files": [file.display().to_string()], "nodeId": node["nodeId"] }),
        );
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, to: &Path) {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}
