//! A Plannr config over a test folder, `once` through the real binary, and client files.

use std::path::{Path, PathBuf};

use super::run_async;

pub const ACCOUNT: &str = "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b";

pub fn config(dir: &Path, url: &str, mode: &str, token: &str) -> PathBuf {
    let text = format!(
        r#"
state_dir = "{dir}/state"
shutdown_timeout = "5s"
[log]
format = "json"
[connections.plannr]
kind = "plannr"
base_url = "{url}"
token = "{token}"
account_uuid = "{ACCOUNT}"
rate_limit = "1000/s"
poll_interval = "20ms"
retry = {{ max_attempts = 10, initial_backoff = "10ms", max_backoff = "100ms" }}

[pipelines.clients]
connection = "plannr"
target = "plannr.import.clients"
mode = "{mode}"
source = {{ kind = "folder", path = "{dir}/inbox", settle = "200ms", rescan_interval = "200ms" }}
batch = {{ max_rows = 20, max_wait = "100ms" }}
[pipelines.clients.fields]
first_name = {{ column = "First Name", transform = ["trim"] }}
last_name = {{ column = "Surname", transform = ["trim"] }}
email = {{ column = "Email", transform = ["trim", "lowercase"] }}
send_welcome_email = {{ column = "Welcome", transform = ["bool"] }}
date_of_birth = {{ column = "DOB", transform = ["date:%d/%m/%Y"] }}

[pipelines.contacts]
connection = "plannr"
target = "plannr.contact_details"
source = {{ kind = "folder", path = "{dir}/contacts", settle = "200ms" }}
batch = {{ max_rows = 10, max_wait = "100ms" }}
[pipelines.contacts.fields]
type = "Type"
name = "Label"
value = {{ column = "Value", transform = ["trim"] }}
is_primary = {{ column = "Primary", transform = ["bool"] }}
account_uuids = {{ column = "Accounts", transform = ["split:|"] }}
"#,
        dir = dir.display()
    );
    let path = dir.join("config.toml");
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::create_dir_all(dir.join("contacts")).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn once(config: &Path, pipeline: &str, dir: &Path, file: &Path) -> (i32, String) {
    let out = run_async(vec![
        "once".into(),
        "--config".into(),
        config.display().to_string(),
        "--pipeline".into(),
        pipeline.into(),
        "--report-dir".into(),
        dir.join("reports").display().to_string(),
        file.display().to_string(),
    ])
    .await;
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// `n` clients; the ones at `no_surname` have no surname, at `bad_email` an email Plannr refuses.
pub fn clients(n: usize, no_surname: &[usize], bad_email: &[usize]) -> String {
    let mut s = String::from("First Name,Surname,Email,Welcome,DOB\n");
    for i in 0..n {
        let surname = if no_surname.contains(&i) { String::new() } else { format!("Surname{i}") };
        let email = if bad_email.contains(&i) {
            format!("person{i}-at-example.com")
        } else {
            format!("person{i}@example.com")
        };
        s.push_str(&format!("Person{i},{surname},{email},no,01/02/1980\n"));
    }
    s
}

pub fn stored(records: &serde_json::Value) -> Vec<String> {
    let mut emails: Vec<String> = records["plannr"]["records"]["clients"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["email"].as_str().unwrap_or("").to_string())
        .collect();
    emails.sort();
    emails
}
