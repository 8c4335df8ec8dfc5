//! `crm-ingest check`: validate the config and print the plan of what would run.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Auth, SourceSettings};

pub fn run(config: &Path) -> ExitCode {
    let settings = match super::load_config(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    println!("config {} is valid", config.display());
    println!("state_dir: {}", settings.state_dir.display());
    for (name, c) in &settings.connections {
        let who = match &c.auth {
            Auth::Bearer { account_uuid, .. } => format!("bearer token, account {account_uuid}"),
            Auth::Basic { username, .. } => format!("basic auth as {username}"),
            Auth::OAuth { token_url, account_uuid, .. } => {
                format!("OAuth2 via {token_url}, account {account_uuid}")
            }
        };
        println!(
            "connection {name}: {} at {} ({who}); rate {} burst {}, {} in flight, timeout {}, {} attempts",
            c.kind.as_str(),
            c.base_url,
            c.rate_limit,
            c.burst,
            c.max_in_flight,
            humantime::format_duration(c.timeout),
            c.retry.max_attempts
        );
    }
    for p in &settings.pipelines {
        let source = match &p.source {
            SourceSettings::Folder(f) => format!("folder {}", f.path.display()),
            SourceSettings::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        };
        println!(
            "pipeline {}: {source} -> {} via {} (batches of {} rows or {})",
            p.name,
            p.target.name(),
            p.connection.name,
            p.batch.max_rows,
            humantime::format_duration(p.batch.max_wait)
        );
        for f in &p.fields {
            println!("  {} <- {:?}", f.target, f.source);
        }
    }
    ExitCode::SUCCESS
}

/// `check --connect`: one harmless call per connection and one list per S3 source.
pub async fn connect(config: std::path::PathBuf) -> ExitCode {
    crate::logging::init_quiet();
    let Ok(settings) = crate::config::load(&config) else {
        return ExitCode::from(super::EXIT_USAGE);
    };
    let mut ok = true;
    let connections = match crate::daemon::connections(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    for (name, conn) in &connections {
        match conn.probe().await {
            Ok(()) => println!("connection {name}: reachable, credentials accepted"),
            Err(e) => {
                ok = false;
                eprintln!("error: connection {name}: {e}");
            }
        }
    }
    for p in &settings.pipelines {
        if let SourceSettings::S3(s) = &p.source {
            let source = crate::source::s3::S3Source::new(
                s.clone(),
                s.patterns.clone(),
                &settings.state_dir,
            )
            .await;
            match source.probe().await {
                Ok(()) => {
                    println!("pipeline {}: s3://{}/{} is reachable", p.name, s.bucket, s.prefix)
                }
                Err(e) => {
                    ok = false;
                    eprintln!("error: pipeline {}: {e}", p.name);
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_USAGE)
    }
}
