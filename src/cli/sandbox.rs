//! `crm-ingest sandbox`: the CRM simulator on its own.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox::{Budget, RealApi, Sandbox, SandboxOptions};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Answer 429 with Retry-After over this rate (N/s, N/min, N/h).
    #[arg(long, value_parser = Budget::parse)]
    pub rate_limit: Option<Budget>,
    /// Share of requests (0 to 1) answered with a fault (HTML 500, 503, broken connection).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Delay added to every answer, e.g. 200ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Status polls an import job answers Pending before it completes.
    #[arg(long, default_value_t = 1)]
    pub pending_polls: u32,
    /// Jobs take this long instead of a count of polls: BASE+PER_ROW (400ms+4ms), optionally
    /// changing from a job on (400ms+4ms,200:3200ms+0ms). Listed at /_sandbox/jobs.
    #[arg(long, value_parser = crate::sandbox::timed::JobTime::parse)]
    pub job_time: Option<crate::sandbox::timed::JobTime>,
    /// Repsly API username the sandbox accepts.
    #[arg(long, default_value = "sandbox")]
    pub repsly_username: String,
    /// Repsly API password the sandbox accepts.
    #[arg(long, default_value = "sandbox")]
    pub repsly_password: String,
    /// A client containing this text makes its whole batch fail with 400 (to test isolation).
    #[arg(long)]
    pub poison: Option<String>,
    /// A client containing this text is refused in the job's Errors[] (a remote row failure).
    #[arg(long)]
    pub refuse: Option<String>,
    /// Plannr Bearer token the sandbox accepts.
    #[arg(long, default_value = "sandbox-token")]
    pub plannr_token: String,
    /// Plannr account uuid the sandbox expects in X-PLANNR-ACCOUNT-UUID.
    #[arg(long, default_value = "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b")]
    pub plannr_account: String,
    /// Status a finished Plannr import reports (complete, completed, finished, ...).
    #[arg(long, default_value = "complete")]
    pub plannr_terminal_status: String,
    /// Wrap Plannr resources in {"data": ...}.
    #[arg(long)]
    pub plannr_wrap_data: bool,
    /// Answer as the real APIs are known to (repeatable): plannr-report-csv,
    /// plannr-report-xlsx, plannr-report-elsewhere, plannr-errors-object,
    /// plannr-failed-jobs-count-jobs, plannr-seed-shape, plannr-start-reset,
    /// plannr-poll-404-once, repsly-nulls, repsly-invalid-without-errors,
    /// repsly-item-id-not-code, repsly-forget-jobs.
    #[arg(long = "behave", value_name = "NAME")]
    pub behave: Vec<String>,
    /// A contact detail whose value contains this text is created, then its answer is lost.
    #[arg(long)]
    pub contact_lost_reply: Option<String>,
    /// A contact detail for an account uuid containing this text gets a 403.
    #[arg(long)]
    pub contact_forbidden: Option<String>,
    /// A Repsly client containing this text is saved with a warning.
    #[arg(long)]
    pub repsly_warn: Option<String>,
    /// Repsly's import answer (`{id}` for the job id).
    #[arg(long)]
    pub repsly_job_message: Option<String>,
}

impl SandboxArgs {
    pub fn options(&self) -> Result<SandboxOptions, String> {
        let mut real = RealApi {
            contact_lost_reply: self.contact_lost_reply.clone(),
            contact_forbidden: self.contact_forbidden.clone(),
            repsly_warn: self.repsly_warn.clone(),
            repsly_job_message: self.repsly_job_message.clone(),
            ..RealApi::default()
        };
        for name in &self.behave {
            real.set(name)?;
        }
        Ok(SandboxOptions {
            rate_limit: self.rate_limit,
            fail_rate: self.fail_rate.clamp(0.0, 1.0),
            latency: self.latency,
            pending_polls: self.pending_polls,
            job_time: self.job_time,
            repsly_username: self.repsly_username.clone(),
            repsly_password: self.repsly_password.clone(),
            poison: self.poison.clone(),
            refuse: self.refuse.clone(),
            plannr_token: self.plannr_token.clone(),
            plannr_account: self.plannr_account.clone(),
            plannr_terminal_status: self.plannr_terminal_status.clone(),
            plannr_wrap_data: self.plannr_wrap_data,
            real,
            ..SandboxOptions::default()
        })
    }
}

pub async fn run(args: SandboxArgs) -> ExitCode {
    crate::logging::init_quiet();
    let stop = CancellationToken::new();
    let options = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: --behave: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let addr = match Sandbox::new(options).spawn(&args.listen, stop.clone()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    crate::say!("sandbox listening on http://{addr}");
    crate::say!(
        "  Repsly base_url: http://{addr}/v3 (username {}, password {})",
        args.repsly_username,
        args.repsly_password
    );
    crate::say!(
        "  Plannr base_url: http://{addr} (token {}, account_uuid {})",
        args.plannr_token,
        args.plannr_account
    );
    crate::say!("  records: http://{addr}/_sandbox/records");
    let _ = tokio::signal::ctrl_c().await;
    stop.cancel();
    ExitCode::SUCCESS
}
