//! The daemon: every pipeline's source watched, files processed concurrently within limits,
//! progress kept in the ledger. SIGHUP swaps in a new config without dropping in-flight files;
//! shutdown stops claiming, lets in-flight batches finish within `shutdown_timeout`, then
//! leaves what is left to resume from the ledger at the next start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Settings, SourceSettings};
use crate::delivery::Connection;
use crate::health::Health;
use crate::ledger::Ledger;
use crate::ops::server::OpsState;
use crate::ops::systemd;
use crate::pipeline::FileContext;
use crate::source::claims::{Claims, SharedClaims};
use crate::source::s3::{ClaimedObject, S3Source};
use crate::source::{Claimed, FolderSource};
use crate::targets;

mod file;
mod finished;
mod folder;
mod s3;

/// How long aborted files get to write their last checkpoint after the deadline.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What drives a running daemon from outside: shutdown, and config reloads (SIGHUP).
pub struct Control {
    pub shutdown: CancellationToken,
    pub reload: Option<mpsc::Receiver<()>>,
}

type Connections = BTreeMap<String, Arc<Connection>>;

/// One [`Connection`] per configured connection, shared by the pipelines naming it.
pub fn connections(settings: &Settings) -> anyhow::Result<Connections> {
    reuse_connections(settings, &BTreeMap::new(), None)
}

/// A connection of the same name lives on across reloads, whatever changed: it keeps its one
/// limiter and in-flight slots, so files in flight and new ones share them (the reload then
/// gives it the new settings: [`Running::reload`]). A new one gets a task that probes its
/// credentials while they are refused (until `stop`), reading the config at
/// `settings.path` afresh for them.
fn reuse_connections(
    settings: &Settings,
    old: &Connections,
    stop: Option<&CancellationToken>,
) -> anyhow::Result<Connections> {
    let context = |name: &str| format!("connection `{name}`: cannot build its HTTP client");
    let mut out = Connections::new();
    for (name, c) in &settings.connections {
        if let Some(existing) = old.get(name) {
            out.insert(name.clone(), existing.clone());
            continue;
        }
        let conn = Arc::new(
            Connection::new(c.clone(), crate::metrics::get()).with_context(|| context(name))?,
        );
        if let Some(stop) = stop {
            let (path, name) = (settings.path.clone(), name.clone());
            let fresh = move || crate::config::load(&path).ok()?.connections.get(&name).cloned();
            tokio::spawn(conn.clone().recover(fresh, stop.clone()));
        }
        out.insert(name.clone(), conn);
    }
    Ok(out)
}

/// Runs until `shutdown` is cancelled, then drains.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(settings, Control { shutdown, reload: None }).await
}

/// Shared by every generation of watchers: the ledger, limits, shutdown tokens, file tasks.
#[derive(Clone)]
pub(crate) struct Shared {
    ledger: Arc<Ledger>,
    /// Disk problems: while one lasts intake is paused and `/readyz` says so.
    health: Arc<Health>,
    /// Finished files go into the history and their events into the outbox through it.
    notify: Arc<crate::notify::Notifier>,
    files: TaskTracker,
    global: Arc<Semaphore>,
    stop: CancellationToken,
    abort: CancellationToken,
    /// This daemon's owner id (one per state dir): it names its claims.
    owner: String,
    /// Its claims folder and lock in each watched folder, kept across reloads.
    claims: Arc<std::sync::Mutex<BTreeMap<PathBuf, SharedClaims>>>,
}

impl Shared {
    /// This daemon's claims in `folder`, taken the first time it is watched.
    fn claims_in(&self, folder: &std::path::Path) -> std::io::Result<SharedClaims> {
        let mut all =
            self.claims.lock().map_err(|_| std::io::Error::other("claims lock poisoned"))?;
        if let Some(c) = all.get(folder) {
            return Ok(c.clone());
        }
        let c = Claims::take(folder, &self.owner)?;
        all.insert(folder.to_path_buf(), c.clone());
        Ok(c)
    }
}

/// The watchers of one config; cancelled on reload, while their files finish.
struct Generation {
    cancel: CancellationToken,
    connections: Connections,
}

pub async fn run_with(settings: Settings, mut control: Control) -> anyhow::Result<()> {
    let ledger = Arc::new(Ledger::open(&settings.state_dir).context("cannot open the ledger")?);
    let reader = crate::ledger::Reader::open(&settings.state_dir)
        .context("cannot read the ledger")?
        .map(Arc::new)
        .context("the ledger vanished after it was opened")?;
    let health = Arc::new(Health::default());
    let notify = crate::notify::Notifier::new(ledger.clone(), &settings);
    let shared = Shared {
        ledger: ledger.clone(),
        health: health.clone(),
        notify: notify.clone(),
        files: TaskTracker::new(),
        global: Arc::new(Semaphore::new(settings.max_files_in_flight)),
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
        owner: crate::source::owner::id(&settings.state_dir),
        claims: Arc::default(),
    };
    let generation = start(&settings, &shared, &BTreeMap::new(), true).await?;
    let ops_connections =
        Arc::new(RwLock::new(generation.connections.values().cloned().collect::<Vec<_>>()));
    let ops_settings = Arc::new(RwLock::new(Arc::new(settings.clone())));
    let ops_stop = CancellationToken::new();
    let state = OpsState {
        ledger: ledger.clone(),
        connections: ops_connections.clone(),
        health,
        reader: reader.clone(),
        settings: ops_settings.clone(),
        notify: notify.clone(),
    };
    if let Some(server) = &settings.server {
        let addr =
            crate::ops::server::spawn(&server.listen, state.clone(), ops_stop.clone()).await?;
        tracing::info!(listen = %addr, "console at / and operator endpoints: /healthz /readyz /metrics /status");
    }
    tokio::spawn(crate::notify::sender::run(notify, reader, ops_stop.clone()));
    tokio::spawn(crate::ops::alerts::watch(state, ops_stop.clone()));
    tokio::spawn(finished::keep_history(shared.clone(), ops_settings.clone(), ops_stop.clone()));
    announce(&settings);
    systemd::ready(&running(&settings));
    let mut running = Running { settings, generation, shared, ops_connections, ops_settings };
    running.serve(&mut control).await;
    running.drain().await;
    ops_stop.cancel();
    Ok(())
}

/// A daemon between start-up and shutdown.
struct Running {
    settings: Settings,
    generation: Generation,
    shared: Shared,
    ops_connections: Arc<RwLock<Vec<Arc<Connection>>>>,
    /// The config the console and the history's upkeep read; swapped on reload.
    ops_settings: Arc<RwLock<Arc<Settings>>>,
}

impl Running {
    /// Until shutdown: watchdog pings and config reloads.
    async fn serve(&mut self, control: &mut Control) {
        let mut watchdog = systemd::watchdog_every().map(tokio::time::interval);
        loop {
            let reload = async {
                match control.reload.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let ping = async {
                match watchdog.as_mut() {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = control.shutdown.cancelled() => return,
                _ = ping => systemd::watchdog(),
                Some(()) = reload => self.reload().await,
            }
        }
    }

    /// SIGHUP: a valid new config replaces the watchers; a bad one is logged and ignored.
    async fn reload(&mut self) {
        let refused = "config reload refused; the old config keeps running";
        let new = match crate::config::load(&self.settings.path) {
            Ok(new) => new,
            Err(e) => {
                return tracing::error!(error = %e.to_string().replace('\n', "; "), "{refused}")
            }
        };
        let next = match start(&new, &self.shared, &self.generation.connections, false).await {
            Ok(next) => next,
            Err(e) => return tracing::error!(error = %format!("{e:#}"), "{refused}"),
        };
        for (name, c) in &new.connections {
            let Some(conn) = next.connections.get(name) else { continue };
            if let Err(e) = conn.reconfigure(c.clone()) {
                tracing::error!(connection = %name, error = %e, "cannot rebuild the connection's HTTP client; it keeps its old settings");
            }
            // A connection holding its files tries the reloaded credentials now.
            conn.probe_now();
        }
        self.generation.cancel.cancel();
        self.generation = next;
        self.settings = new;
        if let Ok(mut c) = self.ops_connections.write() {
            *c = self.generation.connections.values().cloned().collect();
        }
        if let Ok(mut s) = self.ops_settings.write() {
            *s = Arc::new(self.settings.clone());
        }
        self.shared.notify.reconfigure(&self.settings);
        tracing::info!(config = %self.settings.path.display(), pipelines = self.settings.pipelines.len(), "config reloaded");
        announce(&self.settings);
        systemd::status(&running(&self.settings));
    }

    /// Stops claiming, lets files in flight finish within `shutdown_timeout`, then leaves
    /// what is left to resume; the ledger's last writes are committed.
    async fn drain(self) {
        let (settings, shared) = (&self.settings, &self.shared);
        systemd::stopping();
        tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down: no new files are claimed; finishing the batches in flight");
        self.generation.cancel.cancel();
        shared.stop.cancel();
        shared.files.close();
        if tokio::time::timeout(settings.shutdown_timeout, shared.files.wait()).await.is_err() {
            tracing::warn!("shutdown_timeout reached: batches still in flight are left to resume at the next start");
            shared.abort.cancel();
            let _ = tokio::time::timeout(ABORT_GRACE, shared.files.wait()).await;
        }
        if let Err(e) = shared.ledger.sync().await {
            tracing::error!(error = %e, "the ledger's last writes failed");
        }
        shared.ledger.close();
    }
}

/// The start-up (and reload) line: every pipeline with its source and target.
fn announce(settings: &Settings) {
    let pipelines: Vec<String> = settings
        .pipelines
        .iter()
        .map(|p| {
            let source = match &p.source {
                SourceSettings::Folder(f) => f.path.display().to_string(),
                SourceSettings::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
            };
            format!("{}: {source} -> {}", p.name, p.target.name())
        })
        .collect();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %settings.path.display(), pipelines = %pipelines.join("; "), "crm-ingest running");
}

fn running(settings: &Settings) -> String {
    format!("running {} pipeline(s)", settings.pipelines.len())
}

/// Starts watchers and dispatchers for every pipeline of `settings`.
async fn start(
    settings: &Settings,
    shared: &Shared,
    old: &Connections,
    first: bool,
) -> anyhow::Result<Generation> {
    let connections = reuse_connections(settings, old, Some(&shared.stop))?;
    for (name, conn) in connections.iter().filter(|(_, c)| !c.remembers()) {
        let kept = shared.ledger.paces(name).await.unwrap_or_default();
        conn.remember(shared.ledger.clone(), kept);
    }
    let cancel = CancellationToken::new();
    for pipeline in &settings.pipelines {
        let ctx = |report_dir: PathBuf| FileContext {
            pipeline: pipeline.clone(),
            target: targets::build(pipeline),
            connection: connections.get(&pipeline.connection.name).cloned(),
            report_dir,
            stop: shared.stop.clone(),
            abort: shared.abort.clone(),
        };
        let slots = Arc::new(Semaphore::new(pipeline.files_in_flight));
        match &pipeline.source {
            SourceSettings::Folder(f) => {
                let source = FolderSource::new(f.clone());
                let prepare_error = || {
                    format!(
                        "pipeline `{}`: cannot prepare folder {}",
                        pipeline.name,
                        f.path.display()
                    )
                };
                source.prepare().with_context(prepare_error)?;
                let source =
                    source.with_claims(shared.claims_in(&f.path).with_context(prepare_error)?);
                let ctx =
                    ctx(pipeline.default_report_dir().unwrap_or_else(|| f.path.join("reports")));
                tracing::info!(pipeline = %pipeline.name, source = %f.path.display(), target = %pipeline.target.name(), connection = %pipeline.connection.name, "watching");
                let (tx, rx) = mpsc::channel::<Claimed>(1);
                // A connection that holds (refused credentials) leaves new files in the inbox.
                let held = connections.get(&pipeline.connection.name).map(|c| c.held());
                let paused = either(shared.health.paused(), held, cancel.clone());
                let health = shared.health.clone();
                let watch = source.clone().watch(slots, tx, cancel.clone(), first, health, paused);
                tokio::spawn(watch);
                tokio::spawn(dispatch(rx, shared.clone(), move |claimed, shared| {
                    folder::handle(ctx.clone(), source.clone(), claimed, shared)
                }));
            }
            SourceSettings::S3(s) => {
                let metrics = crate::metrics::get();
                let source =
                    S3Source::new(s.clone(), s.patterns.clone(), &settings.state_dir, metrics)
                        .await;
                // Reports go to `report_dir` when it is set, else up to `<prefix>reports/`
                // from a staging folder in the state dir.
                let upload = pipeline.report_dir.is_none();
                let dir = pipeline
                    .report_dir
                    .clone()
                    .unwrap_or_else(|| settings.state_dir.join("s3-reports").join(&pipeline.name));
                let ctx = ctx(dir);
                tracing::info!(pipeline = %pipeline.name, source = %format!("s3://{}/{}", s.bucket, s.prefix), target = %pipeline.target.name(), connection = %pipeline.connection.name, "watching");
                let (tx, rx) = mpsc::channel::<ClaimedObject>(1);
                tokio::spawn(source.clone().watch(slots, tx, cancel.clone()));
                tokio::spawn(dispatch(rx, shared.clone(), move |claimed, shared| {
                    s3::handle(ctx.clone(), source.clone(), claimed, shared, upload)
                }));
            }
        }
    }
    Ok(Generation { cancel, connections })
}

/// Takes claimed files and runs `handle` for each on its own task, within the global limit.
async fn dispatch<C, F, Fut>(mut rx: mpsc::Receiver<C>, shared: Shared, handle: F)
where
    C: Send + 'static,
    F: Fn(C, Shared) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    while let Some(claimed) = rx.recv().await {
        let Ok(global_permit) = shared.global.clone().acquire_owned().await else { return };
        let work = handle(claimed, shared.clone());
        shared.files.spawn(async move {
            work.await;
            drop(global_permit);
        });
    }
}

/// `true` while either says so (`b` absent: `a` alone), until `cancel`.
fn either(
    a: tokio::sync::watch::Receiver<bool>,
    b: Option<tokio::sync::watch::Receiver<bool>>,
    cancel: CancellationToken,
) -> tokio::sync::watch::Receiver<bool> {
    let Some(mut b) = b else { return a };
    let mut a = a;
    let (tx, rx) = tokio::sync::watch::channel(*a.borrow() || *b.borrow());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = a.changed() => if r.is_err() { return },
                r = b.changed() => if r.is_err() { return },
            }
            tx.send_replace(*a.borrow() || *b.borrow());
        }
    });
    rx
}
