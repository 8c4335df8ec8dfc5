//! Raw config -> [`Settings`]: cross-table checks, defaults, `${VAR}` and `*_file` secrets.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::raw::*;
use super::settings::*;
use super::{ConfigError, ConfigProblem};
use crate::secret::Secret;

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The `${NAME}`s a text names without a default (`${NAME:-default}` needs nothing set).
fn variables(text: &str) -> impl Iterator<Item = &str> {
    text.split("${")
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(inner, _)| var_ref(inner)))
        .filter_map(|(name, default)| default.is_none().then_some(name))
}

/// `NAME` or `NAME:-default` (the default used when NAME is unset or empty, as in a shell).
fn var_ref(inner: &str) -> (&str, Option<&str>) {
    match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    }
}

/// Why `name` is not a target: the closest known one, and the known ones.
pub fn unknown_target(name: &str) -> String {
    let names = crate::schema::target_names();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let hint = super::keys::closest_of(name, &refs)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    format!("unknown target `{name}`{hint}; known targets: {}", names.join(", "))
}

/// What a config is loaded for: `run` needs everything; `check` and `plan` send nothing, so
/// credentials may be missing; `plan` reads one file, so a folder source need not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Check,
    Plan,
}

/// Validation state: collects every problem so the user sees them all at once.
pub struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    vars: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    pub(super) warnings: Vec<String>,
    pub(super) purpose: Purpose,
}

impl<'a> Ctx<'a> {
    pub fn new(
        path: &'a Path,
        text: &'a str,
        vars: &'a dyn Fn(&str) -> Option<String>,
        purpose: Purpose,
    ) -> Self {
        Self { path, text, vars, problems: Vec::new(), warnings: Vec::new(), purpose }
    }

    /// A credential (`token`, `password`, ...): `check` and `plan` send nothing, so a missing
    /// variable is only a warning there, saying what `run` will need.
    pub(super) fn credential(&mut self, key: &str, value: &Spanned<String>) -> String {
        if self.purpose == Purpose::Run {
            return self.expand(key, value);
        }
        let text = value.get_ref();
        let missing: Vec<&str> =
            variables(text).filter(|name| (self.vars)(name).is_none()).collect();
        if missing.is_empty() {
            return self.expand(key, value);
        }
        let names = missing.join(", ");
        self.warn(
            value.span(),
            format!("`{key}` needs {names} to run (not needed to check or plan)"),
        );
        text.clone()
    }

    pub(super) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = Some(line_of(self.text, span.start));
        self.problems.push(ConfigProblem {
            path: self.path.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    /// A problem of the file as a whole (a default that does not work here), without a line.
    pub(super) fn problem_without_line(&mut self, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: self.path.to_path_buf(),
            line: None,
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = line_of(self.text, span.start);
        self.warnings.push(format!("{} line {}: {}", self.path.display(), line, message.into()));
    }

    /// Replaces each `${VAR}` (`${VAR:-default}`: the default when VAR is unset or empty); a
    /// missing variable without a default is a problem naming it and the key.
    pub(super) fn expand(&mut self, key: &str, value: &Spanned<String>) -> String {
        let text = value.get_ref();
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.problem(value.span(), format!("`{key}` has an unclosed `${{`"));
                return out;
            };
            let (name, default) = var_ref(&after[..end]);
            match ((self.vars)(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => self.problem(
                    value.span(),
                    format!("`{key}` needs environment variable {name}, which is not set"),
                ),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A secret from `key` (env-expanded) or from the file named by `key_file`; offline
    /// (`check`, `plan`) a secret that is not there yet is a warning.
    pub(super) fn secret(
        &mut self,
        key: &str,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        anchor: Range<usize>,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(v), None) => Some(Secret::new(self.credential(key, v))),
            (None, Some(f)) => {
                let expanded = self.expand(&format!("{key}_file"), f);
                let path = self.relative(&expanded);
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(Secret::new(s.trim_end_matches(['\n', '\r']))),
                    Err(e) => {
                        let why = format!("cannot read `{key}_file` {}: {e}", path.display());
                        if self.purpose == Purpose::Run {
                            self.problem(f.span(), why);
                        } else {
                            self.warn(f.span(), format!("{why}; `run` will need it"));
                        }
                        Some(Secret::new(""))
                    }
                }
            }
            (Some(v), Some(_)) => {
                self.problem(v.span(), format!("give `{key}` or `{key}_file`, not both"));
                None
            }
            (None, None) => {
                self.problem(anchor, format!("`{key}` (or `{key}_file`) is required"));
                None
            }
        }
    }

    /// Paths in the config are relative to the config file's folder.
    pub(super) fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// A checked value: its value, or `None` with a problem naming `key` and its line.
    pub(super) fn value<T: Clone>(&mut self, key: &str, v: &Value<T>) -> Option<T> {
        let s = v.as_ref()?;
        match &s.get_ref().0 {
            Ok(t) => Some(t.clone()),
            Err(e) => {
                self.problem(s.span(), format!("`{key}`: {e}"));
                None
            }
        }
    }

    /// A duration, or `default` (with a problem when the file's value is not one).
    pub(super) fn duration(
        &mut self,
        key: &str,
        v: &Value<HumanDuration>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        self.value(key, v).map_or(default, |d| d.0)
    }

    /// A count that means nothing at 0 (a limit of nothing at once, batches of no row): 0 is
    /// refused, naming the key, its line and what it would do, rather than raised silently.
    pub(super) fn at_least_one<T: Clone + PartialEq + From<u8>>(
        &mut self,
        key: &str,
        v: &Value<T>,
        would: &str,
    ) -> Option<T> {
        let n = self.value(key, v)?;
        if n == T::from(0) {
            let span = v.as_ref().map(|s| s.span()).unwrap_or_default();
            self.problem(span, format!("`{key}` = 0 {would}: it must be at least 1"));
            return None;
        }
        Some(n)
    }

    /// A duration that means nothing at zero (a timeout, a poll interval); like
    /// [`Ctx::duration`], with zero refused as [`Ctx::at_least_one`] refuses 0.
    pub(super) fn nonzero_duration(
        &mut self,
        key: &str,
        v: &Value<HumanDuration>,
        default: std::time::Duration,
        would: &str,
    ) -> std::time::Duration {
        let d = self.duration(key, v, default);
        if d.is_zero() {
            let span = v.as_ref().map(|s| s.span()).unwrap_or_default();
            self.problem(span, format!("`{key}` = 0 {would}: it must be more than zero"));
            return default;
        }
        d
    }

    fn finish<T>(mut self, value: T) -> Result<T, ConfigError> {
        self.problems.sort_by_key(|p| p.line);
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.problems, self.warnings))
        }
    }

    pub fn settings(mut self, raw: RawConfig) -> Result<Settings, ConfigError> {
        let state_dir = match &raw.state_dir {
            Some(s) => {
                let expanded = self.expand("state_dir", s);
                self.relative(&expanded)
            }
            None => PathBuf::from("/var/lib/crm-ingest"),
        };
        let state_what = "`state_dir` (where the ledger is kept)";
        self.writable(state_what, &state_dir, raw.state_dir.as_ref().map(|s| s.span()));
        let log = self.log(raw.log.as_ref());
        let server = self.server(raw.server.as_ref());
        let history_keep = self.duration("history_keep", &raw.history_keep, DEFAULT_HISTORY_KEEP);
        let mut connections = BTreeMap::new();
        for (name, conn) in &raw.connections {
            if let Some(c) = self.connection(name.get_ref(), conn) {
                connections.insert(name.get_ref().clone(), Arc::new(c));
            }
        }
        let mut pipelines = Vec::new();
        for (name, p) in &raw.pipelines {
            if let Some(p) = self.pipeline(name, p, &connections) {
                pipelines.push(Arc::new(p));
            }
        }
        if raw.pipelines.is_empty() {
            self.problems.push(ConfigProblem {
                path: self.path.to_path_buf(),
                line: None,
                message: "no [pipelines.NAME] table: nothing would run".into(),
            });
        }
        let names: Vec<String> = raw.pipelines.keys().map(|k| k.get_ref().clone()).collect();
        let notify = self.notify(&raw.notify, &names);
        let max_files_in_flight = self
            .at_least_one(
                "max_files_in_flight",
                &raw.max_files_in_flight,
                "would never let a file be processed",
            )
            .unwrap_or(DEFAULT_MAX_FILES_IN_FLIGHT);
        let shutdown_timeout =
            self.duration("shutdown_timeout", &raw.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        let settings = Settings {
            path: self.path.to_path_buf(),
            state_dir,
            shutdown_timeout,
            max_files_in_flight,
            server,
            log,
            history_keep,
            notify,
            connections,
            pipelines,
            warnings: self.warnings.clone(),
        };
        self.finish(settings)
    }

    fn log(&mut self, raw: Option<&RawLog>) -> LogSettings {
        let mut log = LogSettings { format: LogFormat::Json, level: "info".into() };
        let Some(raw) = raw else { return log };
        if let Some(f) = &raw.format {
            match f.get_ref().as_str() {
                "json" => log.format = LogFormat::Json,
                "pretty" => log.format = LogFormat::Pretty,
                other => self
                    .problem(f.span(), format!("log `format` = `{other}` is not json or pretty")),
            }
        }
        if let Some(l) = &raw.level {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                self.problem(
                    l.span(),
                    format!("log `level` = `{}` is not a valid level or filter", l.get_ref()),
                );
            }
            log.level = l.get_ref().clone();
        }
        log
    }

    fn pipeline(
        &mut self,
        name: &Spanned<String>,
        raw: &RawPipeline,
        connections: &BTreeMap<String, Arc<ConnectionSettings>>,
    ) -> Option<PipelineSettings> {
        let pname = name.get_ref().clone();
        let target = self.target(&pname, raw);
        let connection = match connections.get(raw.connection.get_ref()) {
            Some(c) => Some(c.clone()),
            None => {
                let known: Vec<&str> = connections.keys().map(String::as_str).collect();
                self.problem(
                    raw.connection.span(),
                    format!(
                        "pipeline `{pname}`: unknown connection `{}` (defined: {})",
                        raw.connection.get_ref(),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                );
                None
            }
        };
        if let (Some(c), Some(t)) = (&connection, &target) {
            if c.kind != t.crm() {
                self.problem(
                    raw.target.span(),
                    format!(
                        "pipeline `{pname}`: target {} needs a {} connection, but `{}` is {}",
                        t.name(),
                        t.crm().as_str(),
                        c.name,
                        c.kind.as_str()
                    ),
                );
            }
        }
        let source = self.source(&pname, &raw.source);
        let csv = self.csv(&pname, raw.csv.as_ref());
        let fields = match &target {
            Some(t) => self.fields(&pname, t, &raw.fields, raw.target.span()),
            None => Vec::new(),
        };
        if raw.fields.is_empty() {
            self.problem(
                raw.target.span(),
                format!("pipeline `{pname}`: no [pipelines.{pname}.fields] mapping"),
            );
        }
        let batch = self.batch(&pname, raw.batch.as_ref(), target.as_ref());
        let report_dir = raw.report_dir.as_ref().map(|d| {
            let d = self.expand("report_dir", d);
            self.relative(&d)
        });
        let report_mode = self.report_mode(&pname, raw.report_mode.as_ref());
        self.pipeline_folders(&pname, source.as_ref(), report_dir.as_ref(), raw);
        let files_in_flight = self
            .at_least_one(
                &format!("pipelines.{pname}.files_in_flight"),
                &raw.files_in_flight,
                "would never let a file of this pipeline be processed",
            )
            .unwrap_or(DEFAULT_FILES_PER_PIPELINE);
        let duplicates = self.duplicates(&pname, raw.duplicates.as_ref());
        Some(PipelineSettings {
            name: pname,
            connection: connection?,
            target: target?,
            source: source?,
            batch,
            report_dir,
            report_mode,
            csv,
            fields,
            files_in_flight,
            duplicates,
        })
    }

    /// `duplicates = "allow" | "refuse"` (the default).
    fn duplicates(&mut self, pname: &str, raw: Option<&Spanned<String>>) -> Duplicates {
        match raw.map(|d| (d.get_ref().as_str(), d.span())) {
            None | Some(("refuse", _)) => Duplicates::Refuse,
            Some(("allow", _)) => Duplicates::Allow,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!(
                        "pipeline `{pname}`: duplicates `{other}` is not \"allow\" or \"refuse\""
                    ),
                );
                Duplicates::Refuse
            }
        }
    }

    /// A folder source and the report folder must take files (claims, moves, reports).
    fn pipeline_folders(
        &mut self,
        pname: &str,
        source: Option<&SourceSettings>,
        report_dir: Option<&PathBuf>,
        raw: &RawPipeline,
    ) {
        let folder = match source {
            Some(SourceSettings::Folder(f)) if f.path.is_dir() => Some(&f.path),
            _ => None,
        };
        if let Some(path) = folder {
            let what = format!("pipeline `{pname}`: source folder");
            self.writable(&what, path, Some(raw.source.span()));
        }
        let reports = report_dir.cloned().or_else(|| folder.map(|f| f.join("reports")));
        if let Some(dir) = reports {
            let span = raw.report_dir.as_ref().map_or(raw.source.span(), |d| d.span());
            self.writable(&format!("pipeline `{pname}`: report folder"), &dir, Some(span));
        }
    }

    /// `report_mode = "0640"`: octal, read and write for the owner, at most read and write
    /// beyond; reading for every user is allowed with a warning (reports hold personal data).
    fn report_mode(&mut self, pname: &str, raw: Option<&Spanned<String>>) -> u32 {
        let private = crate::report::atomic::PRIVATE;
        let Some(raw) = raw else { return private };
        let text = raw.get_ref().trim();
        let key = format!("pipelines.{pname}.report_mode");
        match u32::from_str_radix(text, 8) {
            Ok(mode)
                if (3..=4).contains(&text.len())
                    && mode & !0o666 == 0
                    && mode & private == private =>
            {
                if mode & 0o006 != 0 {
                    self.warn(raw.span(), format!("`{key}` = \"{text}\" lets every user of this machine read the reports, which hold personal data; \"0640\" with a group is the usual choice"));
                }
                mode
            }
            _ => {
                self.problem(raw.span(), format!("`{key}` = \"{text}\" is not a file mode like \"0600\" or \"0640\" (octal; the owner reads and writes; no execute or special bits)"));
                private
            }
        }
    }

    /// `batch = { max_rows, max_wait }`; a target's own default size (Repsly's 50).
    fn batch(
        &mut self,
        pname: &str,
        raw: Option<&RawBatch>,
        target: Option<&TargetSpec>,
    ) -> BatchSettings {
        let default_rows = target.map_or(500, |t| crate::schema::batch_rows(&t.name()));
        let Some(b) = raw else {
            return BatchSettings { max_rows: default_rows, max_wait: DEFAULT_MAX_WAIT };
        };
        BatchSettings {
            max_rows: self
                .at_least_one(
                    &format!("pipelines.{pname}.batch.max_rows"),
                    &b.max_rows,
                    "would make batches of no row",
                )
                .unwrap_or(default_rows),
            max_wait: self.duration(
                &format!("pipelines.{pname}.batch.max_wait"),
                &b.max_wait,
                DEFAULT_MAX_WAIT,
            ),
        }
    }

    fn target(&mut self, pname: &str, raw: &RawPipeline) -> Option<TargetSpec> {
        let t = raw.target.get_ref().as_str();
        let mode = raw.mode.as_ref();
        let spec = if let Some(import_type) = t.strip_prefix("plannr.import.") {
            if !crate::schema::is_target(t) {
                self.problem(
                    raw.target.span(),
                    format!("pipeline `{pname}`: {}", unknown_target(t)),
                );
                return None;
            }
            let mode = match mode.map(|m| m.get_ref().as_str()) {
                None | Some("store") => ImportMode::Store,
                Some("update") => ImportMode::Update,
                Some("validate") => ImportMode::Validate,
                Some(other) => {
                    let span = mode.map_or(raw.target.span(), |m| m.span());
                    self.problem(
                        span,
                        format!(
                            "pipeline `{pname}`: mode `{other}` is not store, update or validate"
                        ),
                    );
                    ImportMode::Store
                }
            };
            TargetSpec::PlannrImport { import_type: import_type.to_string(), mode }
        } else {
            let Some(info) = crate::schema::target(t) else {
                self.problem(
                    raw.target.span(),
                    format!("pipeline `{pname}`: {}", unknown_target(t)),
                );
                return None;
            };
            let spec = TargetSpec::Named(info.name);
            // What every pipeline of this target should know (a user import changes the bill).
            if let Some(notice) = info.schema.notice {
                self.warn(raw.target.span(), format!("pipeline `{pname}`: {notice}"));
            }
            if let Some(m) = mode {
                self.problem(
                    m.span(),
                    format!("pipeline `{pname}`: `mode` applies only to plannr.import targets"),
                );
            }
            spec
        };
        Some(spec)
    }

    fn csv(&mut self, pname: &str, raw: Option<&RawCsv>) -> CsvSettings {
        let mut csv = CsvSettings::default();
        let Some(raw) = raw else { return csv };
        csv.sheet = raw.sheet.clone();
        let key = format!("pipelines.{pname}.csv.max_record_bytes");
        match self.value(&key, &raw.max_record_bytes).map(usize::try_from) {
            Some(Ok(n)) if n >= 1024 => csv.max_record_bytes = n,
            Some(_) => {
                let span = raw.max_record_bytes.as_ref().map(|m| m.span()).unwrap_or_default();
                self.problem(span, format!("`{key}` must be at least 1024"));
            }
            None => {}
        }
        if let Some(d) = &raw.delimiter {
            let text = d.get_ref();
            csv.delimiter = match text.as_str() {
                "auto" => Delimiter::Auto,
                "\\t" | "tab" => Delimiter::Byte(b'\t'),
                t if t.len() == 1 && t.is_ascii() && t != "\"" => Delimiter::Byte(t.as_bytes()[0]),
                _ => {
                    self.problem(d.span(), format!("pipeline `{pname}`: delimiter `{text}` must be one ASCII character or \"auto\""));
                    Delimiter::Auto
                }
            };
        }
        if let Some(h) = &raw.header_row {
            csv.header_row = match h.get_ref() {
                toml::Value::String(s) if s == "auto" => HeaderRow::Auto,
                toml::Value::Integer(n) if *n >= 1 => HeaderRow::Line(n.unsigned_abs()),
                other => {
                    self.problem(h.span(), format!("pipeline `{pname}`: header_row `{other}` must be a line number (1 or more) or \"auto\""));
                    HeaderRow::Auto
                }
            };
        }
        if let Some(e) = &raw.encoding {
            csv.encoding = match e.get_ref().to_ascii_lowercase().as_str() {
                "utf-8" | "utf8" => Encoding::Utf8,
                "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => Encoding::Windows1252,
                "macintosh" | "mac-roman" | "macroman" | "x-mac-roman" => Encoding::Macintosh,
                "auto" => Encoding::Auto,
                other => {
                    self.problem(e.span(), format!("pipeline `{pname}`: encoding `{other}` is not utf-8, windows-1252, macintosh or auto"));
                    Encoding::Auto
                }
            };
        }
        csv
    }
}
