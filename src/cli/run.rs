//! `crm-ingest run`: the daemon until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

pub async fn run(config: PathBuf) -> ExitCode {
    let settings = match super::load_config(&config, crate::config::Purpose::Run) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(&settings.log);
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let (reload_tx, reload) = tokio::sync::mpsc::channel(1);
    tokio::spawn(hangups(reload_tx));
    let control = crate::daemon::Control { shutdown, reload: Some(reload) };
    match crate::daemon::run_with(settings, control).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the daemon could not start");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first SIGTERM/SIGINT starts a drain; a second one exits at once.
pub async fn signals(shutdown: CancellationToken) {
    let mut count = 0;
    loop {
        wait_for_signal().await;
        count += 1;
        if count == 1 {
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    }
}

/// Each SIGHUP asks the daemon to reload its config.
#[cfg(unix)]
async fn hangups(tx: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        let _ = tx.try_send(());
    }
}

#[cfg(not(unix))]
async fn hangups(_tx: tokio::sync::mpsc::Sender<()>) {}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
