//! The command line (SPEC §1). Each subcommand lives in its own file; this one parses and
//! dispatches, and turns results into exit codes.

mod check;
mod demo;
mod history;
mod init;
mod once;
pub mod out;
mod plan;
mod retry;
mod run;
mod sandbox;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for usage and config errors.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "crm-ingest",
    version,
    about = "Turns CSV files dropped in a folder into Plannr and Repsly records, with row-level error reports"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch every pipeline's source until SIGTERM/SIGINT.
    #[command(after_help = "Example:\n  crm-ingest run --config /etc/crm-ingest/config.toml")]
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and print what would run (exit 0 valid, 2 invalid).
    #[command(
        after_help = "Example:\n  crm-ingest check --config config/example.toml\n  crm-ingest check --config /etc/crm-ingest/config.toml --connect"
    )]
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Also make one harmless authenticated call per connection and one list per S3 source.
        #[arg(long)]
        connect: bool,
    },
    /// Dry run one file: parse, map, validate; write the would-be report. No network.
    #[command(
        after_help = "Example:\n  crm-ingest plan --config config/example.toml --pipeline repsly_clients examples/clients-messy.csv"
    )]
    Plan {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        pipeline: String,
        /// Where to write the report (default: a new temp folder, printed).
        #[arg(long)]
        report_dir: Option<PathBuf>,
        file: PathBuf,
    },
    /// Process one file end to end through the CRM, write its report, exit
    /// (0 all rows accepted, 1 some failed, 2 usage/config error).
    #[command(
        after_help = "Example:\n  crm-ingest once --config config/example.toml --pipeline repsly_clients clients.csv"
    )]
    Once {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        pipeline: String,
        /// Where to write the report (default: the pipeline's report_dir, else `reports/` beside the file).
        #[arg(long)]
        report_dir: Option<PathBuf>,
        file: PathBuf,
    },
    /// Write a starter config from a sample export: columns matched to the target's fields,
    /// transforms suggested from the values, every guess a line you can change.
    #[command(
        after_help = init::after_help()
    )]
    Init {
        #[arg(long, short)]
        target: String,
        /// Write the config here (a new file); default: print it.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// A CSV or XLSX export with a header line.
        sample: PathBuf,
    },
    /// Serve a local simulator of the CRM APIs.
    #[command(
        after_help = "Example:\n  crm-ingest sandbox --listen 127.0.0.1:8080 --rate-limit 20/s --fail-rate 0.1"
    )]
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Ask a running daemon's /healthz (for container health checks): exit 0 if healthy.
    #[command(after_help = "Example:\n  crm-ingest health --url http://127.0.0.1:9464/healthz")]
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
        url: String,
    },
    /// Show a running daemon's files in flight (rows settled, rate, ETA) and the last
    /// files finished with their counts; exit 1 when no daemon answers. With `[server]
    /// token` set, give it in CRM_INGEST_TOKEN.
    #[command(
        after_help = "Example:\n  crm-ingest status\n  crm-ingest status --url http://10.0.0.5:9464/status"
    )]
    Status {
        #[arg(long, default_value = "http://127.0.0.1:9464/status")]
        url: String,
    },
    /// The files the ledger knows, newest first: when, pipeline, file, outcome, rows, report.
    History(history::HistoryArgs),
    /// Put a file from failed/ back into its pipeline's inbox, to be imported again
    /// (exit 1 when there is nothing to retry).
    #[command(after_help = "Example:
  crm-ingest retry --config /etc/crm-ingest/config.toml 42
  crm-ingest retry --config /etc/crm-ingest/config.toml clients-march.csv")]
    Retry {
        #[arg(long, short)]
        config: PathBuf,
        /// A history id (`crm-ingest history`), a file name, or a path in `failed/`.
        file_or_id: String,
    },
    /// Start the sandbox and the daemon on the shipped example files, print each summary.
    #[command(
        after_help = "Example:\n  crm-ingest demo            # process the examples, print summaries, exit\n  crm-ingest demo --watch    # keep running; drop more files into demo/inbox/..."
    )]
    Demo {
        /// Keep running after the examples are done.
        #[arg(long)]
        watch: bool,
        /// Working folder for the demo's inbox, reports and state.
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, connect: false } => check::run(&config),
        Command::Check { config, connect: true } => match check::run(&config) {
            code if code == ExitCode::SUCCESS => with_runtime(check::connect(config)),
            code => code,
        },
        Command::Plan { config, pipeline, report_dir, file } => {
            with_runtime(plan::run(config, pipeline, report_dir, file))
        }
        Command::Once { config, pipeline, report_dir, file } => {
            with_runtime(once::run(config, pipeline, report_dir, file))
        }
        Command::Run { config } => with_runtime(run::run(config)),
        Command::Sandbox(args) => with_runtime(sandbox::run(*args)),
        Command::Demo { watch, dir } => with_runtime(demo::run(watch, dir)),
        Command::Init { target, output, sample } => with_runtime(init::run(target, sample, output)),
        Command::Health { url } => with_runtime(health(url)),
        Command::Status { url } => with_runtime(status::run(url)),
        Command::History(args) => history::run(args),
        Command::Retry { config, file_or_id } => with_runtime(retry::run(config, file_or_id)),
    }
}

async fn health(url: String) -> ExitCode {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build();
    let ok = match client {
        Ok(c) => c.get(&url).send().await.map(|r| r.status().is_success()).unwrap_or(false),
        Err(_) => false,
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {url} is not healthy");
        ExitCode::FAILURE
    }
}

fn with_runtime(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads a config for `purpose` or prints every problem, one per line.
pub fn load_config(
    path: &std::path::Path,
    purpose: crate::config::Purpose,
) -> Result<crate::config::Settings, ExitCode> {
    crate::config::load_for(path, purpose).map_err(|e| {
        for p in &e.0 {
            eprintln!("error: {p}");
        }
        for w in &e.1 {
            eprintln!("warning: {w}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

/// Shared by `plan` and `once`: the config, the named pipeline, and the file's existence.
pub fn load_pipeline(
    config: &std::path::Path,
    pipeline: &str,
    file: &std::path::Path,
    purpose: crate::config::Purpose,
) -> Result<(crate::config::Settings, std::sync::Arc<crate::config::PipelineSettings>), ExitCode> {
    let settings = load_config(config, purpose)?;
    let Some(p) = settings.pipeline(pipeline).cloned() else {
        let names: Vec<&str> = settings.pipelines.iter().map(|p| p.name.as_str()).collect();
        eprintln!(
            "error: {}: no pipeline named `{pipeline}` (defined: {})",
            config.display(),
            names.join(", ")
        );
        return Err(ExitCode::from(EXIT_USAGE));
    };
    if !file.is_file() {
        eprintln!("error: {}: no such file", file.display());
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Ok((settings, p))
}

/// `plan` and `once`: one local file through the pipeline (no ledger), with a progress bar
/// when stderr is a terminal. Without a connection it is a dry run.
pub async fn run_one_file(
    pipeline: std::sync::Arc<crate::config::PipelineSettings>,
    connection: Option<std::sync::Arc<crate::delivery::Connection>>,
    report_dir: PathBuf,
    file: &std::path::Path,
) -> std::io::Result<crate::pipeline::FileResult> {
    let ctx = crate::pipeline::FileContext {
        target: crate::targets::build(&pipeline),
        connection,
        pipeline,
        report_dir,
        stop: tokio_util::sync::CancellationToken::new(),
        abort: tokio_util::sync::CancellationToken::new(),
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let progress = std::sync::Arc::new(crate::pipeline::Progress::default());
    let reporter = once::progress_reporter(progress.clone(), name.clone());
    let input = crate::pipeline::Input::Local(file.to_path_buf());
    let result = crate::pipeline::process_file(&ctx, &input, &name, progress, None).await;
    reporter.abort();
    result
}

/// Prints a file's result the same way for `plan`, `once` and `demo`.
pub fn print_result(result: &crate::pipeline::FileResult) {
    let s = &result.summary;
    crate::say!(
        "{}: read {}, accepted {}, failed {}, unprocessed {}",
        s.file,
        s.rows.read,
        s.rows.accepted,
        s.rows.failed,
        s.rows.unprocessed
    );
    for (stage, n) in &s.failed_by_stage {
        crate::say!("  failed at {stage}: {n}");
    }
    if let Some(e) = &s.error {
        crate::say!("  file not processed: {e}");
    }
    crate::say!("  summary: {}", result.summary_path.display());
    if let Some(p) = &result.errors_path {
        crate::say!("  errors:  {}", p.display());
    }
}
