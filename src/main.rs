//! The `crm-ingest` binary: parse arguments, hand over to [`crm_ingest::cli`].

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crm_ingest::cli::main()
}
