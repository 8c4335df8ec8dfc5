//! `crm-ingest plan`: a dry run of one file. Nothing touches the network.

use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(
    config: PathBuf,
    pipeline: String,
    report_dir: Option<PathBuf>,
    file: PathBuf,
) -> ExitCode {
    crate::logging::init_quiet();
    let (_, p) = match super::load_pipeline(&config, &pipeline, &file, crate::config::Purpose::Plan)
    {
        Ok(x) => x,
        Err(code) => return code,
    };
    let report_dir = report_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "crm-ingest-plan-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ))
    });
    let result = super::run_one_file(p, None, report_dir.clone(), &file).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot write the report in {}: {e}", report_dir.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    crate::say!("dry run: nothing was sent; rows counted as accepted would be sent");
    super::print_result(&result);
    crate::say!("report folder: {}", report_dir.display());
    for (i, s) in result.samples.iter().enumerate() {
        crate::say!("sample payload {}: {}", i + 1, s);
    }
    if let Some(e) = &result.file_error {
        // The file as a whole would go to failed/: say so in the exit code too.
        eprintln!("error: {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
