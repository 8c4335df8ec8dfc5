//! The checked configuration the rest of the program runs on. Nothing here can be invalid:
//! `config::load` refuses a file before any of these exist.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::retry::RetryPolicy;
pub use crate::mapping::spec::{EmptyPolicy, FieldSettings, TemplatePart, ValueSource};
use crate::secret::Secret;

use super::rate::RateLimit;

/// Finished files' summaries are kept this long (`history_keep`).
pub const DEFAULT_HISTORY_KEEP: Duration = Duration::from_secs(90 * 24 * 3600);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Files at once across pipelines: small files spend most of their time waiting on the CRM,
/// so several are in flight to keep its budget used.
pub const DEFAULT_MAX_FILES_IN_FLIGHT: usize = 32;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two status polls of a job; the first polls come sooner.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(3600);
/// The first wait before refused credentials are probed again (it doubles up to 15 min).
pub const DEFAULT_AUTH_RETRY: Duration = Duration::from_secs(60);
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(5);
pub const DEFAULT_S3_POLL: Duration = Duration::from_secs(10);
/// With S3 event notifications, how often the prefix is still listed to catch lost events.
pub const DEFAULT_QUEUE_RESCAN: Duration = Duration::from_secs(600);
/// How long an S3 object's lease lasts without renewal; renewed every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);
/// Shorter leases would be renewed more often than S3 answers reliably.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_FILES_PER_PIPELINE: usize = 16;
/// A spreadsheet row is rarely over a few KiB; 4 MiB leaves room for long notes while a
/// record that inflates to gigabytes (a gzip bomb, a quote never closed) stays bounded.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file this came from, for reloads and messages.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub shutdown_timeout: Duration,
    pub max_files_in_flight: usize,
    pub server: Option<ServerSettings>,
    pub log: LogSettings,
    /// How long finished files stay in the ledger's history.
    pub history_keep: Duration,
    /// Where events go (`[[notify]]`), in the file's order.
    pub notify: Vec<super::notify::SinkSettings>,
    pub connections: BTreeMap<String, Arc<ConnectionSettings>>,
    pub pipelines: Vec<Arc<PipelineSettings>>,
    /// Accepted but worth telling (e.g. a field Plannr does not document).
    pub warnings: Vec<String>,
}

impl Settings {
    pub fn pipeline(&self, name: &str) -> Option<&Arc<PipelineSettings>> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
    /// Needed by every route but `/healthz`, `/readyz` and `/metrics` once set; without it
    /// the console only reads, and uploads and retries are refused.
    pub token: Option<Secret>,
    /// The console's base URL for links in notifications, without a trailing slash.
    pub public_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmKind {
    Plannr,
    Repsly,
}

impl CrmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Plannr => "plannr",
            CrmKind::Repsly => "repsly",
        }
    }
}

/// How a connection proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer {
        token: Secret,
        account_uuid: String,
    },
    Basic {
        username: String,
        password: Secret,
    },
    /// Plannr OAuth2: an access token got from `refresh_token` at `token_url`.
    OAuth {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        account_uuid: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub name: String,
    pub kind: CrmKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub auth: Auth,
    pub rate_limit: RateLimit,
    pub burst: u32,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    /// The first wait before refused credentials are probed again.
    pub auth_retry: Duration,
    /// The rate budget kept in Redis for every process on this connection, if any.
    pub shared_limit: Option<SharedLimit>,
}

/// `shared_limit = { redis = "redis://host:port/", key = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLimit {
    /// May hold a password: never logged.
    pub redis: crate::secret::Secret,
    /// The Redis key every process of this budget uses.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportMode {
    Store,
    Update,
    Validate,
}

impl ImportMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ImportMode::Store => "store",
            ImportMode::Update => "update",
            ImportMode::Validate => "validate",
        }
    }
}

/// What a pipeline's rows become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    PlannrImport {
        import_type: String,
        mode: ImportMode,
    },
    /// Any other target, by its name in the schema's table ([`crate::schema::TARGETS`]):
    /// `repsly.clients`, `repsly.products`, `plannr.contact_details`, ...
    Named(&'static str),
}

impl TargetSpec {
    pub fn name(&self) -> String {
        match self {
            TargetSpec::PlannrImport { import_type, .. } => format!("plannr.import.{import_type}"),
            TargetSpec::Named(name) => name.to_string(),
        }
    }

    /// The target's schema for the way this pipeline writes (Plannr `update` names records by
    /// `uuid`; every other mode creates them).
    pub fn schema(&self) -> crate::schema::Schema {
        let writes = match self {
            TargetSpec::PlannrImport { mode: ImportMode::Update, .. } => {
                crate::schema::Writes::Update
            }
            _ => crate::schema::Writes::Create,
        };
        crate::schema::schema_of(&self.name(), writes)
    }

    /// The CRM a target belongs to: the first part of its name.
    pub fn crm(&self) -> CrmKind {
        match self {
            TargetSpec::Named(name) if name.starts_with("repsly.") => CrmKind::Repsly,
            _ => CrmKind::Plannr,
        }
    }
}

#[derive(Debug, Clone)]
pub enum SourceSettings {
    Folder(FolderSettings),
    S3(S3Settings),
}

#[derive(Debug, Clone)]
pub struct FolderSettings {
    pub path: PathBuf,
    pub patterns: Vec<glob::Pattern>,
    pub settle: Duration,
    pub rescan_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub patterns: Vec<glob::Pattern>,
    pub bucket: String,
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub poll_interval: Duration,
    pub force_path_style: bool,
    /// SQS queue of the bucket's event notifications; `None`: the prefix is listed.
    pub queue_url: Option<String>,
    /// Listing interval (every `poll_interval` without a queue; with one, a safety net).
    pub rescan_interval: Duration,
    /// How long a lease lasts without renewal: a replica sends for an object only while it
    /// holds its lease, and takes over one whose lease expired.
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub max_rows: usize,
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    Auto,
    Byte(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1252,
    /// Mac Roman.
    Macintosh,
    Auto,
}

#[derive(Debug, Clone)]
pub struct CsvSettings {
    pub delimiter: Delimiter,
    pub encoding: Encoding,
    /// Longest record kept; a longer one fails its row at `parse` without being held.
    pub max_record_bytes: usize,
    /// The sheet of a workbook to read (`None`: the first).
    pub sheet: Option<String>,
    /// Which line is the header (`header_row`).
    pub header_row: HeaderRow,
}

/// `header_row`: a line number (1-based, as `_line` counts), or the first of the first 20
/// lines that holds every mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderRow {
    #[default]
    Auto,
    Line(u64),
}

impl Default for CsvSettings {
    fn default() -> Self {
        Self {
            delimiter: Delimiter::Auto,
            encoding: Encoding::Auto,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            sheet: None,
            header_row: HeaderRow::Auto,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub name: String,
    pub connection: Arc<ConnectionSettings>,
    pub target: TargetSpec,
    pub source: SourceSettings,
    pub batch: BatchSettings,
    /// Explicit report folder; `None` means the source's default (`<folder>/reports`).
    pub report_dir: Option<PathBuf>,
    /// Permissions of the report files: [`crate::report::atomic::PRIVATE`] unless
    /// `report_mode` widens it for the report folder's group.
    pub report_mode: u32,
    pub csv: CsvSettings,
    pub fields: Vec<FieldSettings>,
    pub files_in_flight: usize,
    /// Rows of one file naming the same person (Plannr `store` imports): refused or allowed.
    pub duplicates: Duplicates,
}

/// `duplicates` of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// A Plannr `store` row naming the person an earlier row named fails at `validate`.
    #[default]
    Refuse,
    /// `duplicates = "allow"`: every row is sent.
    Allow,
}

impl PipelineSettings {
    /// Where this pipeline's reports go for a folder source.
    pub fn default_report_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.report_dir {
            return Some(dir.clone());
        }
        match &self.source {
            SourceSettings::Folder(f) => Some(f.path.join("reports")),
            SourceSettings::S3(_) => None,
        }
    }
}
