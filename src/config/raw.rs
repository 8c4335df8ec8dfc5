//! The TOML file as written. Unknown keys are collected (all of them, with their path) rather
//! than refused one at a time, and values that can be wrong (durations, rates, counts) are
//! [`Checked`] later, so a file's every problem is reported at once. Values keep their span
//! so each error can name its line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::rate::RateLimit;

/// A value as the file held it, parsed: an error is kept for the checks to report with the
/// key's path and line, instead of stopping the whole file at the first bad value.
#[derive(Debug, Clone)]
pub struct Checked<T>(pub Result<T, String>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        Ok(Checked(value.try_into::<T>().map_err(|e| e.message().trim().replace('\n', " "))))
    }
}

/// A value to check, with where it is.
pub type Value<T> = Option<Spanned<Checked<T>>>;

/// A humantime duration (`500ms`, `2s`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e}")))
    }
}

/// A string or a list of strings (`column = "Email"` or `column = ["Email", "E-mail"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    pub state_dir: Option<Spanned<String>>,
    pub shutdown_timeout: Value<HumanDuration>,
    /// How many files the daemon processes at once across all pipelines.
    pub max_files_in_flight: Value<usize>,
    pub server: Option<RawServer>,
    pub log: Option<RawLog>,
    /// How long the ledger keeps finished files' summaries (`history`, the console).
    pub history_keep: Value<HumanDuration>,
    /// `[[notify]]` tables: where events are sent.
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    #[serde(default)]
    pub connections: BTreeMap<Spanned<String>, RawConnection>,
    #[serde(default)]
    pub pipelines: BTreeMap<Spanned<String>, RawPipeline>,
}

#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub listen: Spanned<String>,
    /// The console's (and `/status`'s) bearer token; uploads and retries need one.
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    /// The console's address as receivers of notifications reach it.
    pub public_url: Option<Spanned<String>>,
}

/// One `[[notify]]` table; which keys apply depends on `kind` (checked in `config::notify`).
#[derive(Debug, Deserialize)]
pub struct RawNotify {
    pub kind: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    pub smtp_url: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<OneOrMany>>,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub pipelines: Option<Spanned<Vec<Spanned<String>>>>,
    pub retry: Option<RawNotifyRetry>,
}

#[derive(Debug, Deserialize)]
pub struct RawNotifyRetry {
    pub initial_backoff: Value<HumanDuration>,
    pub max_backoff: Value<HumanDuration>,
}

#[derive(Debug, Deserialize)]
pub struct RawLog {
    pub format: Option<Spanned<String>>,
    pub level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawConnection {
    pub kind: Spanned<String>,
    pub base_url: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub account_uuid: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub rate_limit: Value<RateLimit>,
    pub burst: Value<u32>,
    pub max_in_flight: Value<usize>,
    pub timeout: Value<HumanDuration>,
    pub retry: Option<RawRetry>,
    /// Wait between status polls of an asynchronous import job.
    pub poll_interval: Value<HumanDuration>,
    /// Give up polling a job after this long; its rows are reported as `unconfirmed`.
    pub poll_timeout: Value<HumanDuration>,
    /// Refused credentials are probed again after this long (doubling up to 15 min).
    pub auth_retry: Value<HumanDuration>,
    /// Plannr OAuth2: refresh an access token instead of a fixed `token`.
    pub oauth: Option<RawOAuth>,
    /// One rate budget shared by every process on this connection, kept in Redis.
    pub shared_limit: Option<RawSharedLimit>,
}

#[derive(Debug, Deserialize)]
pub struct RawSharedLimit {
    pub redis: Spanned<String>,
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawOAuth {
    pub token_url: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    pub client_secret: Option<Spanned<String>>,
    pub client_secret_file: Option<Spanned<String>>,
    pub refresh_token: Option<Spanned<String>>,
    pub refresh_token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawRetry {
    pub max_attempts: Value<u32>,
    pub initial_backoff: Value<HumanDuration>,
    pub max_backoff: Value<HumanDuration>,
}

#[derive(Debug, Deserialize)]
pub struct RawPipeline {
    pub connection: Spanned<String>,
    pub target: Spanned<String>,
    pub mode: Option<Spanned<String>>,
    pub source: Spanned<RawSource>,
    pub batch: Option<RawBatch>,
    pub report_dir: Option<Spanned<String>>,
    /// Octal permissions of the report files (`"0640"`); default 0600.
    pub report_mode: Option<Spanned<String>>,
    pub csv: Option<RawCsv>,
    /// Files of this pipeline processed at once.
    pub files_in_flight: Value<usize>,
    /// `"allow"`: rows of one file that name the same person are all sent (Plannr `store`).
    pub duplicates: Option<Spanned<String>>,
    /// Target field = source; kept as TOML values so `CustomFields` tables and
    /// per-field tables can be told apart (see `settings::fields`).
    #[serde(default)]
    pub fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSource {
    pub kind: Spanned<String>,
    // folder
    pub path: Option<Spanned<String>>,
    pub pattern: Option<OneOrMany>,
    pub settle: Value<HumanDuration>,
    pub rescan_interval: Value<HumanDuration>,
    // s3
    pub bucket: Option<Spanned<String>>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<Spanned<String>>,
    pub poll_interval: Value<HumanDuration>,
    pub force_path_style: Option<bool>,
    /// S3 event notifications on SQS find new objects.
    pub queue_url: Option<Spanned<String>>,
    pub lease_ttl: Value<HumanDuration>,
}

#[derive(Debug, Deserialize)]
pub struct RawBatch {
    pub max_rows: Value<usize>,
    pub max_wait: Value<HumanDuration>,
}

#[derive(Debug, Deserialize)]
pub struct RawCsv {
    pub delimiter: Option<Spanned<String>>,
    pub encoding: Option<Spanned<String>>,
    /// A longer record is a `parse` failure of its row (memory stays bounded).
    pub max_record_bytes: Value<u64>,
    /// The sheet of a workbook to read; default the first.
    pub sheet: Option<String>,
    /// The header's line (1-based) or `"auto"`.
    pub header_row: Option<Spanned<toml::Value>>,
}

/// One entry of `[pipelines.X.fields]` in its table form.
#[derive(Debug, Deserialize)]
pub struct RawFieldTable {
    pub column: Option<OneOrMany>,
    pub template: Option<String>,
    pub value: Option<String>,
    #[serde(default)]
    pub transform: Vec<String>,
    #[serde(default)]
    pub validate: Vec<String>,
    /// `omit` (default: an empty value leaves the field out) or `clear` (send it empty).
    pub empty: Option<String>,
    /// The strftime form the field's dates are sent in, in place of the target's own.
    pub format: Option<String>,
    /// `lookup = { by = "email" }`: the value is looked up in the CRM before sending.
    pub lookup: Option<RawLookup>,
}

/// `lookup = { by = "email" }` of a field.
#[derive(Debug, Deserialize)]
pub struct RawLookup {
    pub by: String,
}
