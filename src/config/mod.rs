//! Configuration: the TOML file ([`raw`]), checked into [`Settings`] by [`load`].
//!
//! Every rejection names the file and line; all problems are reported at once, one per line.

mod connection;
mod fields;
mod keys;
pub mod notify;
pub mod rate;
pub mod raw;
mod retry;
mod server;
pub mod settings;
mod source;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use connection::default_in_flight;
pub use notify::{EventKind, SinkKind, SinkSettings};
pub use retry::RetryPolicy;
pub use settings::*;

/// One problem with the config, already phrased for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

pub use validate::Purpose;

/// Reads and checks a config file to run it; `${VAR}` comes from the process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_for(path, Purpose::Run)
}

/// Reads and checks a config file for `purpose` (`check` and `plan` need no credentials).
pub fn load_for(path: &Path, purpose: Purpose) -> Result<Settings, ConfigError> {
    load_with(path, &|name| std::env::var(name).ok(), purpose)
}

/// Like [`load_for`], with `${VAR}` looked up by `vars` (the demo supplies the sandbox's URL).
pub fn load_with(
    path: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
    purpose: Purpose,
) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![ConfigProblem {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    parse_for(path, &text, vars, purpose)
}

/// Parses config text to run it; `path` only names it in messages and anchors relative paths.
pub fn parse(
    path: &Path,
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    parse_for(path, text, vars, Purpose::Run)
}

/// Parses config text for `purpose`.
pub fn parse_for(
    path: &Path,
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    purpose: Purpose,
) -> Result<Settings, ConfigError> {
    let unknown = keys::unknown(text);
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start);
        let key =
            at.and_then(|a| keys::path_at(text, a)).map(|k| format!("`{k}`: ")).unwrap_or_default();
        let mut problems: Vec<ConfigProblem> =
            unknown.iter().map(|u| unknown_problem(path, text, u)).collect();
        problems.push(ConfigProblem {
            path: path.to_path_buf(),
            line: at.map(|a| validate::line_of(text, a)),
            message: format!("{key}{}", e.message().trim().replace('\n', " ")),
        });
        ConfigError(problems)
    })?;
    let mut ctx = validate::Ctx::new(path, text, vars, purpose);
    for u in &unknown {
        let p = unknown_problem(path, text, u);
        ctx.problem(u.span.clone(), p.message);
    }
    ctx.settings(raw)
}

fn unknown_problem(path: &Path, text: &str, u: &keys::Unknown) -> ConfigProblem {
    let hint = u.suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
    ConfigProblem {
        path: path.to_path_buf(),
        line: Some(validate::line_of(text, u.span.start)),
        message: format!("unknown key `{}`{hint}", u.path),
    }
}
