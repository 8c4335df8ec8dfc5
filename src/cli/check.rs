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
