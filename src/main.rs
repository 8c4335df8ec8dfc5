//! The `crm-ingest` binary: parse arguments, hand over to [`crm_ingest::cli`].

fn main() -> std::process::ExitCode {
    crm_ingest::cli::main()
}
