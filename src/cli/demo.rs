//! `crm-ingest demo`: the sandbox and the daemon on the shipped examples, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::SourceSettings;
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::say;
use crate::source::FolderSource;

/// The demo's config and example files are part of the binary, so `demo` runs anywhere.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("repsly-clients", "clients-clean.csv", include_str!("../../examples/clients-clean.csv")),
    ("repsly-clients", "clients-messy.csv", include_str!("../../examples/clients-messy.csv")),
    ("plannr-clients", "plannr-clients.csv", include_str!("../../examples/plannr-clients.csv")),
    ("plannr-contacts", "plannr-contacts.csv", include_str!("../../examples/plannr-contacts.csv")),
];
const IDLE_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(watch: bool, dir: PathBuf) -> ExitCode {
    match demo(watch, &dir).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(watch: bool, dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = fresh(dir)?;
    let stop = CancellationToken::new();
    let addr = Sandbox::new(SandboxOptions::default()).spawn("127.0.0.1:0", stop.clone()).await?;
    let url = format!("http://{addr}");
    let vars = |name: &str| match name {
        "SANDBOX_URL" => Some(url.clone()),
        "DEMO_DIR" => Some(dir.display().to_string()),
        other => std::env::var(other).ok(),
    };
    let inbox = dir.join("inbox");
    for (sub, _, _) in EXAMPLES {
        std::fs::create_dir_all(inbox.join(sub))?;
    }
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, DEMO_CONFIG)?;
    let settings = crate::config::parse(&config_path, DEMO_CONFIG, &vars)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::logging::init(&crate::config::LogSettings {
        format: crate::config::LogFormat::Pretty,
        // Without --watch the summaries say it all; a log line per file would repeat them.
        level: if watch { "info".into() } else { "error".into() },
    });
    let folders: Vec<(String, FolderSource)> = settings
        .pipelines
        .iter()
        .filter_map(|p| match &p.source {
            SourceSettings::Folder(f) => Some((p.name.clone(), FolderSource::new(f.clone()))),
            SourceSettings::S3(_) => None,
        })
        .collect();
    for (sub, name, text) in EXAMPLES {
        std::fs::write(inbox.join(sub).join(name), text)?;
    }
    say!("examples copied into {}", inbox.display());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(crate::daemon::run(settings.clone(), shutdown.clone()));
    if watch {
        // The sandbox lives as long as the demo: its address is worth printing only here.
        say!("sandbox CRM at {url} (what it holds: {url}/_sandbox/records)");
        say!("watching; drop CSV files into the inbox folders, Ctrl-C to stop");
        tokio::spawn(super::run::signals(shutdown.clone()));
    } else {
        wait_idle(&folders).await;
        shutdown.cancel();
    }
    daemon.await??;
    stop.cancel();
    print_summaries(&settings)?;
    say!(
        "\nsource files: moved to processed/ (or failed/) in each inbox folder under {}",
        inbox.display()
    );
    say!("run it again any time: each demo starts fresh");
    Ok(ExitCode::SUCCESS)
}

/// The demo folder emptied of an earlier run's inbox, reports and ledger, so each run shows
/// the same summaries (an old ledger would call every example "already imported").
fn fresh(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    for sub in ["inbox", "state"] {
        let path = dir.join(sub);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(dir)
}

/// Done when no inbox holds a file to take and nothing is in `.processing/`.
async fn wait_idle(folders: &[(String, FolderSource)]) {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while started.elapsed() < IDLE_LIMIT {
        let busy = folders.iter().any(|(_, f)| {
            let pending = |p: &Path, filter: &dyn Fn(&str) -> bool| {
                std::fs::read_dir(p)
                    .map(|d| d.flatten().any(|e| e.file_name().to_str().is_some_and(filter)))
                    .unwrap_or(false)
            };
            pending(&f.settings.path, &|n| f.wants(n)) || f.holds_claims()
        });
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_summaries(settings: &crate::config::Settings) -> anyhow::Result<()> {
    for p in &settings.pipelines {
        let Some(dir) = p.default_report_dir() else { continue };
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".summary.json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)?;
            let s: serde_json::Value = serde_json::from_str(&text)?;
            let rows = &s["rows"];
            crate::say!(
                "\n{} -> {}: read {}, accepted {}, failed {}, unprocessed {}",
                s["file"].as_str().unwrap_or(""),
                s["target"].as_str().unwrap_or(""),
                rows["read"],
                rows["accepted"],
                rows["failed"],
                rows["unprocessed"]
            );
            crate::say!("  summary: {}", path.display());
            if let Some(r) = s["report"].as_str() {
                crate::say!("  errors:  {}", dir.join(r).display());
            }
        }
    }
    Ok(())
}
