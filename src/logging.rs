//! tracing setup: json or pretty, the config's level, `RUST_LOG` over both. Colour only on a
//! terminal, and never with `NO_COLOR` set: logs sent to a file or a journal stay plain text.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; a second call (tests, demo) is a no-op.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour());
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// For one-shot commands: warnings and errors only, readable.
pub fn init_quiet() {
    init(&LogSettings { format: LogFormat::Pretty, level: "warn".into() });
}

/// Whether log lines may carry colour codes: stderr is a terminal and `NO_COLOR` is not set.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
