//! `crm-ingest status`: a running daemon's `/status` as tables, for a person at a terminal.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::out::table;
use crate::say;

pub async fn run(url: String) -> ExitCode {
    let body = match fetch(&url).await {
        Ok(b) => b,
        Err(Fetch::NoAnswer(e)) => {
            eprintln!("error: {url}: no daemon answers ({e})");
            eprintln!("{NO_DAEMON_HINT}");
            return ExitCode::FAILURE;
        }
        Err(Fetch::Bad(e)) => {
            eprintln!("error: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pipelines = body.get("pipelines").and_then(Value::as_object).cloned().unwrap_or_default();
    if pipelines.is_empty() {
        say!("no file in flight and none finished since the daemon started");
        return ExitCode::SUCCESS;
    }
    let mut flying = vec![row(&["PIPELINE", "FILE", "ROWS SETTLED", "RATE", "ETA"])];
    let mut done = vec![row(&[
        "PIPELINE",
        "FILE",
        "FINISHED",
        "READ",
        "ACCEPTED",
        "FAILED",
        "UNPROCESSED",
        "NOTE",
    ])];
    for (name, p) in &pipelines {
        for f in p.get("in_flight").and_then(Value::as_array).into_iter().flatten() {
            flying.push(in_flight_row(name, f));
        }
        for s in p.get("finished").and_then(Value::as_array).into_iter().flatten() {
            done.push(finished_row(name, s));
        }
    }
    say!("In flight ({}):", flying.len() - 1);
    if flying.len() > 1 {
        table(&flying).iter().for_each(|l| say!("  {l}"));
    }
    say!("Finished, newest first ({}):", done.len() - 1);
    if done.len() > 1 {
        table(&done).iter().for_each(|l| say!("  {l}"));
    }
    ExitCode::SUCCESS
}

/// What to check when nothing answers: the daemon runs only its endpoints with `[server]`.
const NO_DAEMON_HINT: &str = "hint: is `crm-ingest run` running? It answers `status` only when its config has\n  [server]\n  listen = \"127.0.0.1:9464\"\n(add it and restart the daemon; give `--url http://HOST:PORT/status` for another address)";

/// Why `/status` could not be read: nothing answered, or what answered was not a status.
enum Fetch {
    NoAnswer(String),
    Bad(String),
}

async fn fetch(url: &str) -> Result<Value, Fetch> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Fetch::Bad(e.to_string()))?;
    let mut request = client.get(url);
    // With `[server] token` set, /status needs it too.
    if let Ok(token) = std::env::var("CRM_INGEST_TOKEN") {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.map_err(|e| Fetch::NoAnswer(e.to_string()))?;
    if !reply.status().is_success() {
        return Err(Fetch::Bad(format!("the daemon answered {}", reply.status())));
    }
    reply.json().await.map_err(|e| Fetch::Bad(format!("not a status reply: {e}")))
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn in_flight_row(pipeline: &str, f: &Value) -> Vec<String> {
    let done = count(&f["rows_done"]);
    let total = count(&f["rows_total"]);
    let percent = (done * 100).checked_div(total).unwrap_or(0);
    let rate = f["rows_per_second"].as_f64().unwrap_or(0.0);
    let eta = f["eta_seconds"].as_u64().map_or("-".to_string(), |s| {
        humantime::format_duration(Duration::from_secs(s)).to_string()
    });
    vec![
        pipeline.to_string(),
        text(f, "file"),
        format!("{done}/~{total} ({percent}%)"),
        format!("{rate:.1}/s"),
        eta,
    ]
}

fn finished_row(pipeline: &str, s: &Value) -> Vec<String> {
    let rows = &s["rows"];
    let note = match s.get("error").and_then(Value::as_str) {
        Some(e) => format!("file failed: {e}"),
        None => s
            .get("report")
            .and_then(Value::as_str)
            .map_or(String::new(), |r| format!("errors in {r}")),
    };
    vec![
        pipeline.to_string(),
        text(s, "file"),
        text(s, "finished_at"),
        count(&rows["read"]).to_string(),
        count(&rows["accepted"]).to_string(),
        count(&rows["failed"]).to_string(),
        count(&rows["unprocessed"]).to_string(),
        note,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_progress_and_counts() {
        let f = serde_json::json!({"file": "big.csv", "rows_done": 250, "rows_total": 1000,
            "rows_per_second": 12.5, "eta_seconds": 60});
        assert_eq!(in_flight_row("p", &f), ["p", "big.csv", "250/~1000 (25%)", "12.5/s", "1m"]);
        let s = serde_json::json!({"file": "a.csv", "finished_at": "t", "report": "a.errors.csv",
            "rows": {"read": 3, "accepted": 2, "failed": 1, "unprocessed": 0}});
        assert_eq!(finished_row("p", &s)[3..], ["3", "2", "1", "0", "errors in a.errors.csv"]);
    }
}
