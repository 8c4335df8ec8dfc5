//! `crm-ingest history`: the files the ledger knows, newest first, as a table or as JSON.
//! Reads the ledger on a connection of its own: it works while the daemon runs.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::out::table;
use crate::ledger::{HistoryEntry, HistoryFilter, Outcome, Reader};
use crate::say;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  crm-ingest history --config /etc/crm-ingest/config.toml\n  crm-ingest history --pipeline new_clients --since 7d --failed\n  crm-ingest history --json | jq '.[0]'"
)]
pub struct HistoryArgs {
    #[arg(long, short, default_value = "/etc/crm-ingest/config.toml")]
    pub config: PathBuf,
    /// Only this pipeline's files.
    #[arg(long, short)]
    pub pipeline: Option<String>,
    /// Only files finished this recently (`7d`, `12h`, `30m`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only files that did not fully arrive (rows failed, file failed or set aside).
    #[arg(long)]
    pub failed: bool,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many files.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
}

pub fn run(args: HistoryArgs) -> ExitCode {
    let settings = match super::load_config(&args.config, crate::config::Purpose::Check) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let filter = match filter(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let entries = match Reader::open(&settings.state_dir) {
        Ok(Some(reader)) => reader.history(&filter),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let list: Vec<Value> = entries.iter().map(as_json).collect();
        say!("{}", serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into()));
    } else if entries.is_empty() {
        say!("no finished file in the history of {}", settings.state_dir.display());
    } else {
        print_table(&entries);
    }
    ExitCode::SUCCESS
}

fn filter(args: &HistoryArgs) -> Result<HistoryFilter, String> {
    let since = match &args.since {
        Some(s) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| format!("--since {s}: not a duration like 7d or 12h ({e})"))?;
            let d = chrono::Duration::from_std(d).map_err(|_| format!("--since {s}: too long"))?;
            let at =
                chrono::Utc::now().checked_sub_signed(d).ok_or(format!("--since {s}: too long"))?;
            Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
        None => None,
    };
    let outcomes = if args.failed {
        vec![Outcome::RowsFailed, Outcome::Failed, Outcome::SetAside]
    } else {
        Vec::new()
    };
    Ok(HistoryFilter {
        pipeline: args.pipeline.clone(),
        since,
        outcomes,
        file: None,
        limit: Some(args.limit),
    })
}

/// Where a file's errors report is, if it has one: a path, or an `s3://` URL.
pub fn report_location(e: &HistoryEntry) -> Option<String> {
    let name = e.summary.get("report").and_then(Value::as_str)?;
    Some(if e.reports.starts_with("s3://") {
        format!("{}{name}", e.reports)
    } else {
        PathBuf::from(&e.reports).join(name).display().to_string()
    })
}

fn count(e: &HistoryEntry, key: &str) -> u64 {
    e.summary["rows"][key].as_u64().unwrap_or(0)
}

fn as_json(e: &HistoryEntry) -> Value {
    json!({
        "id": e.id,
        "finished_at": e.finished_at,
        "pipeline": e.pipeline,
        "file": e.file,
        "outcome": e.outcome,
        "rows": e.summary.get("rows").cloned().unwrap_or(Value::Null),
        "report": report_location(e),
        "error": e.summary.get("error").cloned().unwrap_or(Value::Null),
        "summary": e.summary,
    })
}

fn print_table(entries: &[HistoryEntry]) {
    let mut rows = vec![[
        "ID",
        "FINISHED",
        "PIPELINE",
        "FILE",
        "OUTCOME",
        "READ",
        "ACCEPTED",
        "FAILED",
        "UNPROCESSED",
        "REPORT",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect::<Vec<_>>()];
    for e in entries {
        let note = match e.summary.get("error").and_then(Value::as_str) {
            Some(err) => err.chars().take(80).collect(),
            None => report_location(e).unwrap_or_else(|| "-".into()),
        };
        rows.push(vec![
            e.id.to_string(),
            e.finished_at.clone(),
            e.pipeline.clone(),
            e.file.clone(),
            e.outcome.clone(),
            count(e, "read").to_string(),
            count(e, "accepted").to_string(),
            count(e, "failed").to_string(),
            count(e, "unprocessed").to_string(),
            note,
        ]);
    }
    table(&rows).iter().for_each(|l| say!("{l}"));
}
