//! Every unknown key of a config file at once, each with its line, its path and the closest
//! known key (serde's `deny_unknown_fields` stops at the first). The file is read once more
//! as a spanned TOML tree and walked against the keys each table takes.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A key the file should not have: where, its full path, and a likely meant one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub span: Range<usize>,
    pub path: String,
    pub suggestion: Option<&'static str>,
}

const TOP: &[&str] = &[
    "state_dir",
    "shutdown_timeout",
    "max_files_in_flight",
    "server",
    "log",
    "history_keep",
    "notify",
    "connections",
    "pipelines",
];
const CONNECTION: &[&str] = &[
    "kind",
    "base_url",
    "token",
    "token_file",
    "account_uuid",
    "username",
    "password",
    "password_file",
    "rate_limit",
    "burst",
    "max_in_flight",
    "timeout",
    "retry",
    "poll_interval",
    "poll_timeout",
    "auth_retry",
    "oauth",
    "shared_limit",
];
const PIPELINE: &[&str] = &[
    "connection",
    "target",
    "mode",
    "source",
    "batch",
    "report_dir",
    "report_mode",
    "csv",
    "files_in_flight",
    "duplicates",
    "fields",
];
const SOURCE: &[&str] = &[
    "kind",
    "path",
    "pattern",
    "settle",
    "rescan_interval",
    "bucket",
    "prefix",
    "region",
    "endpoint",
    "poll_interval",
    "force_path_style",
    "queue_url",
    "lease_ttl",
];
const NOTIFY: &[&str] = &[
    "kind",
    "url",
    "secret",
    "secret_file",
    "smtp_url",
    "from",
    "to",
    "events",
    "pipelines",
    "retry",
];
const FIELD: &[&str] =
    &["column", "template", "value", "transform", "validate", "empty", "format", "lookup"];

/// The keys a table at `path` takes; `None`: any key (names of connections, pipelines, fields).
fn known(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => TOP,
        ["server"] => &["listen", "token", "token_file", "public_url"],
        ["notify"] => NOTIFY,
        ["notify", "retry"] => &["initial_backoff", "max_backoff"],
        ["log"] => &["format", "level"],
        ["connections" | "pipelines"] => return None,
        ["connections", _] => CONNECTION,
        ["connections", _, "retry"] => &["max_attempts", "initial_backoff", "max_backoff"],
        ["connections", _, "oauth"] => &[
            "token_url",
            "client_id",
            "client_secret",
            "client_secret_file",
            "refresh_token",
            "refresh_token_file",
        ],
        ["connections", _, "shared_limit"] => &["redis", "key"],
        ["pipelines", _] => PIPELINE,
        ["pipelines", _, "source"] => SOURCE,
        ["pipelines", _, "batch"] => &["max_rows", "max_wait"],
        ["pipelines", _, "csv"] => {
            &["delimiter", "encoding", "max_record_bytes", "sheet", "header_row"]
        }
        ["pipelines", _, "fields"] => return None,
        ["pipelines", _, "fields", table] if crate::schema::is_custom_table(table) => return None,
        ["pipelines", _, "fields", _, "lookup"] => &["by"],
        ["pipelines", _, "fields", ..] => FIELD,
        _ => return None,
    })
}

/// Every key of `text` that no table takes (empty when the text does not parse: the parser
/// says why on its own).
pub fn unknown(text: &str) -> Vec<Unknown> {
    let Ok(root) = DeTable::parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    walk(root.get_ref(), &mut Vec::new(), &mut out);
    out.sort_by_key(|u| u.span.start);
    out
}

fn walk<'i>(table: &DeTable<'i>, path: &mut Vec<String>, out: &mut Vec<Unknown>) {
    let here: Vec<&str> = path.iter().map(String::as_str).collect();
    let allowed = known(&here);
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        if let Some(keys) = allowed {
            if !keys.contains(&name) {
                let full = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{}.{name}", path.join("."))
                };
                out.push(Unknown {
                    span: key.span(),
                    path: full,
                    suggestion: closest_of(name, keys),
                });
                continue;
            }
        }
        match value.get_ref() {
            DeValue::Table(inner) => {
                path.push(name.to_string());
                walk(inner, path, out);
                path.pop();
            }
            // `[[notify]]`: each table of the array is checked like a table of its own.
            DeValue::Array(items) => {
                path.push(name.to_string());
                for item in items {
                    if let DeValue::Table(inner) = item.get_ref() {
                        walk(inner, path, out);
                    }
                }
                path.pop();
            }
            _ => {}
        }
    }
}

/// The full key path of the value at `offset` (for a parser error that names only a line).
pub fn path_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find(root.get_ref(), offset, &mut path).then(|| path.join("."))
}

fn find(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        let here = key.span().contains(&offset) || value.span().contains(&offset);
        let found = match value.get_ref() {
            DeValue::Table(inner) => find(inner, offset, path) || here,
            _ => here,
        };
        if found {
            return true;
        }
        path.pop();
    }
    false
}

/// The name of `known` within two edits of `name`, if one is.
pub fn closest_of<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known.iter().map(|k| (edits(name, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

/// Levenshtein distance.
pub fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_with_its_path_and_a_suggestion() {
        let text = "state_dir = \"/x\"\nstat_dir = 1\n[connections.r]\nkind = \"repsly\"\nrate_limt = \"2/s\"\n[pipelines.p]\nsource = { kind = \"folder\", pth = \"/x\" }\nbatch = { max_wiat = \"2s\" }\n[pipelines.p.fields]\nCode = { column = \"C\", transfrom = [\"trim\"] }\nName = \"N\"\n";
        let found: Vec<(String, Option<&str>)> =
            unknown(text).into_iter().map(|u| (u.path, u.suggestion)).collect();
        assert_eq!(
            found,
            vec![
                ("stat_dir".into(), Some("state_dir")),
                ("connections.r.rate_limt".into(), Some("rate_limit")),
                ("pipelines.p.source.pth".into(), Some("path")),
                ("pipelines.p.batch.max_wiat".into(), Some("max_wait")),
                ("pipelines.p.fields.Code.transfrom".into(), Some("transform")),
            ]
        );
        let offset = text.find("\"2s\"").unwrap();
        assert_eq!(path_at(text, offset).as_deref(), Some("pipelines.p.batch.max_wiat"));
    }
}
