//! `crm-ingest check`: validate the config (offline: no credentials needed) and print what
//! would run, readably: each pipeline's source, target, connection and rate, and its fields.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{
    Auth, ConnectionSettings, PipelineSettings, Purpose, SourceSettings, ValueSource,
};
use crate::say;
use crate::secret::redact_url;

pub fn run(config: &Path) -> ExitCode {
    let settings = match super::load_config(config, Purpose::Check) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    let path = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    say!("config {} is valid", path.display());
    say!("state_dir: {}", settings.state_dir.display());
    for c in settings.connections.values() {
        say!("{}", connection_line(c));
    }
    for p in &settings.pipelines {
        print_pipeline(p);
    }
    ExitCode::SUCCESS
}

fn connection_line(c: &ConnectionSettings) -> String {
    let who = match &c.auth {
        Auth::Bearer { account_uuid, .. } => format!("bearer token, account {account_uuid}"),
        Auth::Basic { username, .. } => format!("basic auth as {username}"),
        Auth::OAuth { token_url, account_uuid, .. } => {
            format!("OAuth2 via {}, account {account_uuid}", redact_url(token_url))
        }
    };
    let shared = match &c.shared_limit {
        Some(s) => format!(" shared by every replica (Redis key {})", s.key),
        None => " (this process alone)".to_string(),
    };
    format!(
        "connection {}: {} at {} ({who}); rate {}{}{shared}, up to {} requests in flight, timeout {}, {} attempts",
        c.name,
        c.kind.as_str(),
        redact_url(&c.base_url),
        c.rate_limit,
        if c.burst > 1 { format!(" (burst {})", c.burst) } else { String::new() },
        c.max_in_flight,
        humantime::format_duration(c.timeout),
        c.retry.max_attempts
    )
}

fn print_pipeline(p: &PipelineSettings) {
    let source = match &p.source {
        SourceSettings::Folder(f) => {
            let patterns: Vec<String> = f.patterns.iter().map(|g| g.as_str().to_string()).collect();
            let abs = std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone());
            format!(
                "folder {} ({}; taken once closed or stable for {})",
                abs.display(),
                patterns.join(", "),
                humantime::format_duration(f.settle)
            )
        }
        SourceSettings::S3(s) => match &s.queue_url {
            Some(q) => format!(
                "s3://{}/{} (S3 events from {}; re-listed every {})",
                s.bucket,
                s.prefix,
                redact_url(q),
                humantime::format_duration(s.rescan_interval)
            ),
            None => format!(
                "s3://{}/{} (listed every {})",
                s.bucket,
                s.prefix,
                humantime::format_duration(s.poll_interval)
            ),
        },
    };
    let mode = match &p.target {
        crate::config::TargetSpec::PlannrImport { mode, .. } => format!(", mode {}", mode.as_str()),
        _ => String::new(),
    };
    say!("\npipeline {}", p.name);
    say!("  source:   {source}");
    say!(
        "  target:   {}{mode} via connection {} ({})",
        p.target.name(),
        p.connection.name,
        p.connection.rate_limit
    );
    say!(
        "  batches:  {} rows or {}",
        p.batch.max_rows,
        humantime::format_duration(p.batch.max_wait)
    );
    let reports = p.default_report_dir().map_or_else(
        || match &p.source {
            SourceSettings::S3(s) => format!("s3://{}/{}reports/", s.bucket, s.prefix),
            SourceSettings::Folder(_) => String::new(),
        },
        |d| d.display().to_string(),
    );
    say!("  reports:  {reports}");
    say!("  fields:");
    let rows: Vec<[String; 4]> = p.fields.iter().map(field_row).collect();
    let header = ["target".to_string(), "source".into(), "transforms".into(), "validators".into()];
    let widths: Vec<usize> = (0..3)
        .map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in [header].iter().chain(&rows) {
        let pad = |i: usize| format!("{:w$}", r[i], w = widths[i]);
        say!("    {}  <- {}  {}  {}", pad(0), pad(1), pad(2), r[3]);
    }
    say!("  {} takes: {}", p.target.name(), p.target.schema().describe().join("; "));
}

fn field_row(f: &crate::config::FieldSettings) -> [String; 4] {
    let source = match &f.source {
        ValueSource::Columns(cols) => {
            cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" or ")
        }
        ValueSource::Template(parts) => {
            let text: String = parts
                .iter()
                .map(|p| match p {
                    crate::config::TemplatePart::Literal(l) => l.clone(),
                    crate::config::TemplatePart::Column(c) => format!("{{{c}}}"),
                })
                .collect();
            format!("template \"{text}\"")
        }
        ValueSource::Constant(v) => format!("value \"{v}\""),
    };
    let list =
        |items: Vec<String>| if items.is_empty() { "-".to_string() } else { items.join(", ") };
    let mut validators: Vec<String> = f.validators.iter().map(ToString::to_string).collect();
    if let Some(crate::mapping::spec::LookupBy::Email) = f.lookup {
        validators.push("(looked up by email)".into());
    }
    if f.empty == crate::config::EmptyPolicy::Clear {
        validators.push("(empty clears)".into());
    }
    [
        f.target.clone(),
        source,
        list(f.transforms.iter().map(ToString::to_string).collect()),
        list(validators),
    ]
}

/// How long the shared budget's Redis and an S3 source get to answer `check --connect`.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// `check --connect`: one harmless call per connection (and a PING to its shared budget's
/// Redis) and one list per S3 source, all at once, each within a time limit: one line per
/// result, so a server that never answers is reported instead of waited on.
pub async fn connect(config: std::path::PathBuf) -> ExitCode {
    crate::logging::init_quiet();
    let Ok(settings) = crate::config::load(&config) else {
        return ExitCode::from(super::EXIT_USAGE);
    };
    let connections = match crate::daemon::connections(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let crm = connections.iter().map(|(name, conn)| async move {
        probe_connection(name, conn)
            .await
            .map(|()| format!("connection {name}: reachable, credentials accepted"))
    });
    let s3 = settings.pipelines.iter().filter_map(|p| match &p.source {
        SourceSettings::S3(s) => Some(probe_s3(&settings, &p.name, s)),
        SourceSettings::Folder(_) => None,
    });
    let (crm, s3) =
        futures::future::join(futures::future::join_all(crm), futures::future::join_all(s3)).await;
    let mut ok = true;
    for result in crm.into_iter().chain(s3) {
        match result {
            Ok(line) => say!("{line}"),
            Err(line) => {
                ok = false;
                eprintln!("error: {line}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_USAGE)
    }
}

/// The connection's shared budget first (every request waits for it), then one call.
async fn probe_connection(name: &str, conn: &crate::delivery::Connection) -> Result<(), String> {
    if let Some(shared) = &conn.settings().shared_limit {
        probe_redis(shared).await.map_err(|e| {
            format!("connection {name}: shared_limit Redis: {e} (the CRM was not probed: every request waits for this budget)")
        })?;
    }
    // Its own timeout per attempt, and a few seconds for the retries between.
    let limit = conn.settings().timeout.min(Duration::from_secs(30)) + Duration::from_secs(5);
    match tokio::time::timeout(limit, conn.probe()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("connection {name}: {e}")),
        Err(_) => Err(format!(
            "connection {name}: {} did not answer within {}s",
            redact_url(&conn.settings().base_url),
            limit.as_secs()
        )),
    }
}

/// Connects (authenticating with the URL's password) and sends PING, within [`PROBE_LIMIT`].
async fn probe_redis(shared: &crate::config::SharedLimit) -> Result<(), String> {
    let ping = async {
        let client = redis::Client::open(shared.redis.expose()).map_err(redis_error)?;
        let mut c = client.get_multiplexed_async_connection().await.map_err(redis_error)?;
        redis::cmd("PING").query_async::<String>(&mut c).await.map_err(redis_error)?;
        Ok(())
    };
    tokio::time::timeout(PROBE_LIMIT, ping)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE_LIMIT.as_secs())))
}

/// A Redis error in one line, without the URL (it may hold the password).
fn redis_error(e: redis::RedisError) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    match e.kind() {
        redis::ErrorKind::Io if detail.is_empty() => format!("cannot connect ({e})"),
        redis::ErrorKind::Io => format!("cannot connect{detail}"),
        redis::ErrorKind::AuthenticationFailed => {
            format!("the password was refused{detail}")
        }
        _ if detail.contains("WRONGPASS") || detail.contains("NOAUTH") => {
            format!("the password was refused{detail}")
        }
        kind => format!("{kind:?}{detail}"),
    }
}

async fn probe_s3(
    settings: &crate::config::Settings,
    pipeline: &str,
    s: &crate::config::S3Settings,
) -> Result<String, String> {
    let probe = async {
        let source = crate::source::s3::S3Source::new(
            s.clone(),
            s.patterns.clone(),
            &settings.state_dir,
            crate::metrics::get(),
        )
        .await;
        source.probe().await
    };
    let reached = format!("s3://{}/{}", s.bucket, s.prefix);
    match tokio::time::timeout(PROBE_LIMIT * 2, probe).await {
        Ok(Ok(())) => Ok(format!("pipeline {pipeline}: {reached} is reachable")),
        Ok(Err(e)) => Err(format!("pipeline {pipeline}: {e}")),
        Err(_) => Err(format!(
            "pipeline {pipeline}: {reached} did not answer within {}s",
            (PROBE_LIMIT * 2).as_secs()
        )),
    }
}
