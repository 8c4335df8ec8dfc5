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
mod writable;

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

/// Every problem found in a config file, and the warnings found beside them (what `run` will
/// need, among others), so a refused config still says everything at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>, pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

pub use validate::{unknown_target, Purpose};

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
        ConfigError(
            vec![ConfigProblem {
                path: path.to_path_buf(),
                line: None,
                message: format!("cannot read the config file: {e}"),
            }],
            Vec::new(),
        )
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
        let message = match e.span() {
            Some(span) if e.message().starts_with("duplicate key") => duplicate_key(text, span),
            _ => format!("{key}{}", e.message().trim().replace('\n', " ")),
        };
        problems.push(ConfigProblem {
            path: path.to_path_buf(),
            line: at.map(|a| validate::line_of(text, a)),
            message,
        });
        ConfigError(problems, Vec::new())
    })?;
    let mut ctx = validate::Ctx::new(path, text, vars, purpose);
    for u in &unknown {
        let p = unknown_problem(path, text, u);
        ctx.problem(u.span.clone(), p.message);
    }
    ctx.settings(raw)
}

/// "duplicate key" as TOML says it, with the key, its table and where it was first set (the
/// parser's span covers the repeated key's last part).
fn duplicate_key(text: &str, span: std::ops::Range<usize>) -> String {
    let key = text.get(span.clone()).unwrap_or("").trim_matches(['"', '\'']);
    let lines: Vec<&str> = text.lines().collect();
    let here = validate::line_of(text, span.start);
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let current = lines.get(here - 1).copied().unwrap_or("");
    if is_header(current) {
        let header = current.trim();
        let first = lines.iter().position(|l| l.trim() == header).map(|i| i + 1);
        let at = first
            .filter(|f| *f != here)
            .map(|f| format!(" (first on line {f})"))
            .unwrap_or_default();
        return format!("table `{header}` is defined twice{at}: keep one and merge its keys");
    }
    let start = lines[..here - 1].iter().rposition(|l| is_header(l));
    let table = start.map_or("the top level".to_string(), |i| format!("`{}`", lines[i].trim()));
    let first = lines[start.map_or(0, |i| i + 1)..here - 1].iter().position(|l| {
        l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let first = first.map(|i| start.map_or(0, |s| s + 1) + i + 1);
    let at = first.map(|f| format!(", first set on line {f}")).unwrap_or_default();
    format!("duplicate key `{key}` in {table}{at}: keep one")
}

fn unknown_problem(path: &Path, text: &str, u: &keys::Unknown) -> ConfigProblem {
    let hint = u.suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
    ConfigProblem {
        path: path.to_path_buf(),
        line: Some(validate::line_of(text, u.span.start)),
        message: format!("unknown key `{}`{hint}", u.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_with_its_table_and_first_line() {
        let problem = |text: &str| {
            let none = |_: &str| None;
            parse_for(Path::new("c.toml"), text, &none, Purpose::Check).unwrap_err().0
        };
        let p = problem("a = 1\n[connections.r]\nkind = 1\npassword = 2\npassword = 3\n");
        assert_eq!(
            p.last().map(|p| (p.line, p.message.as_str())),
            Some((
                Some(5),
                "duplicate key `password` in `[connections.r]`, first set on line 4: keep one"
            ))
        );
        let p = problem("a = 1\n[c.r]\nkind = 1\n[c.r]\nu = 2\n");
        assert_eq!(
            p[0].message,
            "table `[c.r]` is defined twice (first on line 2): keep one and merge its keys"
        );
        let p = problem("a = 1\na = 2\n");
        assert_eq!(
            p[0].message,
            "duplicate key `a` in the top level, first set on line 1: keep one"
        );
    }
}
