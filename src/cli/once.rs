//! `crm-ingest once`: one file end to end, then exit 0 (all accepted), 1 (some not) or 2.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::daemon;
use crate::pipeline::Progress;

pub async fn run(
    config: PathBuf,
    pipeline: String,
    report_dir: Option<PathBuf>,
    file: PathBuf,
) -> ExitCode {
    let (settings, p) =
        match super::load_pipeline(&config, &pipeline, &file, crate::config::Purpose::Run) {
            Ok(x) => x,
            Err(code) => return code,
        };
    crate::logging::init(&crate::config::LogSettings {
        format: crate::config::LogFormat::Pretty,
        level: "warn".into(),
    });
    let connections = match daemon::connections(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let report_dir = report_dir.or_else(|| p.report_dir.clone()).unwrap_or_else(|| {
        file.parent().map(|d| d.join("reports")).unwrap_or_else(|| PathBuf::from("reports"))
    });
    let connection = connections.get(&p.connection.name).cloned();
    let result = super::run_one_file(p, connection, report_dir.clone(), &file).await;
    match result {
        Ok(r) => {
            super::print_result(&r);
            let all_ok = r.file_error.is_none() && r.summary.rows.accepted == r.summary.rows.read;
            if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: cannot write the report in {}: {e}", report_dir.display());
            ExitCode::from(1)
        }
    }
}

/// How often a line of progress is written when stderr is not a terminal (a log, a pipe).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Progress on stderr while a file runs: a bar of rows settled on a terminal, else a line
/// every ten seconds (rows settled, rate, time left), so a long run never looks stuck.
pub fn progress_reporter(progress: Arc<Progress>, name: String) -> tokio::task::JoinHandle<()> {
    let started = std::time::Instant::now();
    if !std::io::stderr().is_terminal() {
        return tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                eprintln!("{name}: {}", progress.estimate(started.elapsed()));
            }
        });
    }
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        loop {
            let e = progress.estimate(started.elapsed());
            bar.set_length(e.total);
            bar.set_position(e.done);
            bar.set_message(format!("{:.0} rows/s", e.per_second));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
