//! Configuration: the TOML file ([`raw`]), checked into [`Settings`] by [`load`].
//!
//! Every rejection names the file and line; all problems are reported at once, one per line.

mod connection;
mod fields;
pub mod rate;
pub mod raw;
mod retry;
pub mod settings;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use connection::default_in_flight;
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

/// Reads and checks a config file; `${VAR}` comes from the process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with(path, &|name| std::env::var(name).ok())
}

/// Like [`load`], with `${VAR}` looked up by `vars` (the demo supplies the sandbox's URL).
pub fn load_with(
    path: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![ConfigProblem {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    parse(path, &text, vars)
}

/// Parses config text; `path` only names it in messages and anchors relative paths.
pub fn parse(
    path: &Path,
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| validate::line_of(text, s.start));
        ConfigError(vec![ConfigProblem {
            path: path.to_path_buf(),
            line,
            message: e.message().trim().replace('\n', " "),
        }])
    })?;
    validate::Ctx::new(path, text, vars).settings(raw)
}
