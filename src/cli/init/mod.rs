//! `crm-ingest init`: a starter config from a real export. Every guess (which column feeds
//! which field, which transforms clean it) is a visible line the user can read and change;
//! what it could not match is listed as comments.

mod columns;
mod values;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::CsvSettings;
use crate::mapping::Cells;
use crate::pipeline::Input;
use crate::schema::{schema_for, Schema};

/// Rows read from the sample to suggest transforms.
const SAMPLE_ROWS: usize = 200;

/// Where the ledger goes and where `crm-ingest status` finds the daemon. `STATE_DIRECTORY` is
/// what systemd sets for the unit's `StateDirectory=` (and the Docker image for its volume).
const STATE_AND_SERVER: &str = r#"state_dir = "${STATE_DIRECTORY:-state}"  # the ledger: the service's state folder when STATE_DIRECTORY is set (systemd, the image), else state/ beside this file

[server]                            # what `crm-ingest status` asks; loopback only
listen = "127.0.0.1:9464"

"#;

/// The CRM a target belongs to, and how its connection is written.
struct Crm {
    connection: &'static str,
    lines: &'static str,
}

const PLANNR: Crm = Crm {
    connection: "plannr",
    lines: r#"kind = "plannr"
base_url = "https://api.plannrcrm.com"
token = "${PLANNR_TOKEN}"           # from the environment; never logged
account_uuid = "${PLANNR_ACCOUNT_UUID}"
rate_limit = "500/min"              # Plannr's documented limit, shared by every token of the user:
                                    # lower it if other integrations use the same user
"#,
};

const REPSLY: Crm = Crm {
    connection: "repsly",
    lines: r#"kind = "repsly"
base_url = "https://api.repsly.com/v3"
username = "${REPSLY_API_USERNAME}" # from the environment; never logged
password = "${REPSLY_API_PASSWORD}"
rate_limit = "120/min"              # Repsly publishes no limit: a conservative budget
"#,
};

/// What was read from the sample: its header and, per column, the first rows' values.
struct Sample {
    header: Vec<String>,
    columns: Vec<Vec<String>>,
    /// The line each sampled row is on, for the comments that name odd values.
    lines: Vec<u64>,
    rows: usize,
}

pub async fn run(target: String, sample: PathBuf, output: Option<PathBuf>) -> ExitCode {
    let Some(crm) = crm_of(&target) else {
        eprintln!("error: {}", crate::config::unknown_target(&target));
        return ExitCode::from(super::EXIT_USAGE);
    };
    let read = match read_sample(&sample).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", sample.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let folder = std::path::absolute(&sample)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let text = config_text(&target, crm, &sample, &folder, &read);
    match output {
        None => {
            crate::say!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Some(path) => write_new(&path, &text, &target, &sample),
    }
}

/// What `crm-ingest init --help` says after the options: an example, and every target a
/// pipeline may name, from the same tables `check` knows them by.
pub fn after_help() -> String {
    let named: Vec<&str> = crate::schema::TARGETS.iter().map(|t| t.name).collect();
    format!(
        "Example:\n  crm-ingest init --target repsly.clients exports/clients.csv --output config.toml\n\n\
         Targets:\n{},\n  plannr.import.<type>, the <type> one of:\n{}",
        wrapped(&named, 2),
        wrapped(crate::schema::PLANNR_IMPORT_TYPES, 4)
    )
}

/// Names joined by `, `, in lines of at most 90 characters indented by `indent` spaces.
fn wrapped(names: &[&str], indent: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for name in names {
        match lines.last_mut() {
            Some(line) if line.len() + name.len() + 3 <= 90 => {
                line.push_str(", ");
                line.push_str(name);
            }
            Some(line) => {
                line.push(',');
                lines.push(format!("{:indent$}{name}", ""));
            }
            None => lines.push(format!("{:indent$}{name}", "")),
        }
    }
    lines.join("\n")
}

/// The CRM of a known target (`None` for a name no pipeline may use).
fn crm_of(target: &str) -> Option<&'static Crm> {
    if !crate::schema::is_target(target) {
        return None;
    }
    Some(if target.starts_with("repsly.") { &REPSLY } else { &PLANNR })
}

/// Writes the config to a new file (an existing one is never overwritten) and says what next.
fn write_new(path: &Path, text: &str, target: &str, sample: &Path) -> ExitCode {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path);
    let written = file.and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    if let Err(e) = written {
        eprintln!("error: {}: cannot write the config: {e}", path.display());
        return ExitCode::from(super::EXIT_USAGE);
    }
    let pipeline = pipeline_name(target);
    crate::say!("wrote {}; next:", path.display());
    crate::say!("  crm-ingest check --config {}", path.display());
    crate::say!(
        "  crm-ingest plan  --config {} --pipeline {pipeline} {}",
        path.display(),
        sample.display()
    );
    ExitCode::SUCCESS
}

async fn read_sample(path: &Path) -> Result<Sample, String> {
    if !path.is_file() {
        return Err("no such file".into());
    }
    let mut file =
        Input::Local(path.to_path_buf()).open(&CsvSettings::default(), &|_| true).await?;
    let header = file.dialect.header.clone();
    let encoding = file.dialect.encoding;
    let mut columns = vec![Vec::new(); header.len()];
    let block = crate::csvio::RowBlock::with_capacity(SAMPLE_ROWS);
    let (block, read) = file.next_block(0, block).await;
    read.map_err(|e| e.to_string())?;
    let text = block.text(encoding);
    let width = header.len();
    let rows = block
        .rows()
        .iter()
        .take(SAMPLE_ROWS)
        .filter(|r| block.ragged(r, width, file.dialect.from_workbook).is_none());
    let mut count = 0;
    let mut lines = Vec::new();
    for row in rows {
        count += 1;
        lines.push(row.line);
        let cells = block.cells(row, text, encoding);
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(cells.cell(i).map(|c| c.into_owned()).unwrap_or_default());
        }
    }
    Ok(Sample { header, columns, lines, rows: count })
}

/// `repsly.clients` → `repsly_clients`, `plannr.import.clients` → `plannr_clients`.
fn pipeline_name(target: &str) -> String {
    target.replace(".import.", ".").replace('.', "_")
}

fn config_text(target: &str, crm: &Crm, sample: &Path, folder: &Path, read: &Sample) -> String {
    let pipeline = pipeline_name(target);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `crm-ingest init` from {} ({} columns, {} sample rows).",
        sample.display(),
        read.header.len(),
        read.rows
    );
    out.push_str(
        "# Every mapping below is a guess from the sample's header and values: read it, change it.\n",
    );
    let _ = writeln!(out, "#   crm-ingest check --config THIS_FILE");
    let _ = writeln!(out, "#   crm-ingest plan  --config THIS_FILE --pipeline {pipeline} SAMPLE");
    out.push_str(STATE_AND_SERVER);
    let _ = writeln!(out, "[connections.{}]\n{}", crm.connection, crm.lines);
    let _ = writeln!(out, "[pipelines.{pipeline}]");
    let _ = writeln!(out, "connection = \"{}\"", crm.connection);
    let _ = writeln!(out, "target = {}", quote(target));
    if target.starts_with("plannr.import.") {
        out.push_str(
            "mode = \"store\"                      # store (create records) | update (by uuid) | validate (check only)\n",
        );
    }
    let _ = writeln!(
        out,
        "source = {{ kind = \"folder\", path = {} }}  # the sample's folder: change it to where exports are dropped",
        quote(&folder.to_string_lossy())
    );
    let _ = writeln!(out, "\n[pipelines.{pipeline}.fields]            # target field = source");
    out.push_str(&field_lines(&schema_for(target), read));
    out
}

/// One line per matched field, then the required fields nothing matched, then the columns
/// left over.
fn field_lines(schema: &Schema, read: &Sample) -> String {
    let mut out = String::new();
    let mut matches = columns::match_columns(schema, &read.header);
    let looked_up = columns::match_lookups(schema, &read.header, &mut matches);
    for (field, column) in &matches {
        let Some(c) = column else { continue };
        if looked_up.contains(field) {
            out.push_str(&lookup_line(field, &read.header[*c], &read.columns[*c]));
            continue;
        }
        let def = schema.fields.iter().find(|d| d.name == *field);
        let values = values::Column { values: &read.columns[*c], lines: &read.lines };
        let s = values::suggest(&values, def, field);
        if let Some(note) = &s.note {
            let _ = writeln!(out, "# {field}: {note}");
        }
        let _ = writeln!(
            out,
            "{field} = {}{}",
            source(&read.header[*c], &s.transforms, &s.validators),
            example(&read.columns[*c])
        );
    }
    for def in schema.fields.iter().filter(|d| d.required) {
        if matches.iter().any(|(f, c)| *f == def.name && c.is_some()) {
            continue;
        }
        out.push_str(&unmatched_required(def.name));
    }
    let used: Vec<usize> = matches.iter().filter_map(|(_, c)| *c).collect();
    let left: Vec<usize> = (0..read.header.len()).filter(|i| !used.contains(i)).collect();
    if !left.is_empty() {
        out.push_str("\n# Columns not matched to a field (not sent):\n");
    }
    for i in left {
        let name = &read.header[i];
        let _ = match schema.custom_prefix {
            Some(prefix) if !name.is_empty() => writeln!(
                out,
                "#   {} — to send it as a custom field: {prefix}{} = {}",
                quote(name),
                bare_key(name),
                quote(name)
            ),
            _ => writeln!(out, "#   {} (column {})", quote(name), i + 1),
        };
    }
    out
}

/// The lines for a field filled by a lookup of the emails in `column`.
fn lookup_line(field: &str, column: &str, values: &[String]) -> String {
    format!(
        "# {field}: no uuid column; each client is found by its primary email\n\
         {field} = {{ column = {}, lookup = {{ by = \"email\" }} }}{}\n",
        quote(column),
        example(values)
    )
}

/// The line for a required field no column matched: a constant where one fits every row
/// (written as a guess to read), else an empty value that fails each row until it is named.
fn unmatched_required(field: &str) -> String {
    match field {
        "send_welcome_email" => format!(
            "{field} = {{ value = \"false\" }}  # REQUIRED by Plannr; a guess: \"true\" emails every new client a portal invitation\n"
        ),
        _ => format!(
            "{field} = {{ value = \"\" }}  # REQUIRED, but no column matched: name the column that holds it, e.g. {field} = \"Column\"\n"
        ),
    }
}

/// A field's source: the bare column name, or a table with its transforms and validators.
fn source(column: &str, transforms: &[String], validators: &[String]) -> String {
    let list = |items: &[String]| items.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ");
    if transforms.is_empty() && validators.is_empty() {
        return quote(column);
    }
    let mut s = format!("{{ column = {}", quote(column));
    if !transforms.is_empty() {
        let _ = write!(s, ", transform = [{}]", list(transforms));
    }
    if !validators.is_empty() {
        let _ = write!(s, ", validate = [{}]", list(validators));
    }
    s.push_str(" }");
    s
}

/// A trailing comment with the column's first non-empty value, so the guess can be judged.
fn example(values: &[String]) -> String {
    match values.iter().find(|v| !v.trim().is_empty()) {
        Some(v) => {
            let short: String = v.chars().take(40).filter(|c| !c.is_control()).collect();
            format!("  # e.g. {}", quote(&short))
        }
        None => "  # empty in the sample".into(),
    }
}

/// A TOML key: bare when it can be, else quoted.
fn bare_key(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        name.to_string()
    } else {
        quote(name)
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_written_with_every_guess_visible() {
        let header: Vec<String> =
            ["Customer ID", "Company", "Phone", "Segment"].map(String::from).into();
        let col = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let read = Sample {
            header,
            columns: vec![
                col(&["A1", "A2"]),
                col(&["Acme", "Bolt"]),
                col(&["07700 900123", "020 7946 0958"]),
                col(&["Gold", "Silver"]),
            ],
            lines: vec![2, 3],
            rows: 2,
        };
        let text = config_text(
            "repsly.clients",
            &REPSLY,
            Path::new("in/x.csv"),
            Path::new("/tmp/in"),
            &read,
        );
        assert!(text.contains("Code = \"Customer ID\"  # e.g. \"A1\""), "{text}");
        assert!(text.contains("Phone = { column = \"Phone\", transform = [\"phone_e164\"] }"));
        assert!(text.contains(
            "\"Segment\" — to send it as a custom field: CustomFields.Segment = \"Segment\""
        ));
        assert!(text.contains("rate_limit = \"120/min\""));
        let parsed: toml::Table = text.parse().expect("valid TOML");
        assert!(parsed["pipelines"]["repsly_clients"]["fields"].get("Name").is_some());
    }

    #[test]
    fn init_help_names_every_target_the_tables_know() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let init = cli.find_subcommand_mut("init").expect("an init subcommand");
        let help = init.render_long_help().to_string();
        for name in crate::schema::TARGETS.iter().map(|t| t.name) {
            assert!(help.contains(name), "{name} in:\n{help}");
        }
        let types = help.split_once("plannr.import.<type>").map(|(_, after)| after);
        let types: Vec<&str> = types.unwrap_or_default().split([',', ' ', '\n']).collect();
        for t in crate::schema::PLANNR_IMPORT_TYPES {
            assert!(types.contains(t), "{t} after plannr.import.<type> in:\n{help}");
        }
        let targets = help.split_once("Targets:").map(|(_, t)| t).unwrap_or_default();
        assert!(targets.lines().all(|l| l.chars().count() <= 90), "short lines:\n{help}");
    }

    #[test]
    fn a_client_email_column_fills_client_uuid_by_a_lookup() {
        let read = |header: &[&str]| Sample {
            header: header.iter().map(|h| h.to_string()).collect(),
            columns: header.iter().map(|_| vec!["ann@example.com".to_string()]).collect(),
            lines: vec![2],
            rows: 1,
        };
        let lookup = "client_uuid = { column = \"Client Email\", lookup = { by = \"email\" } }";
        for schema in [crate::schema::PLANNR_PLANS, crate::schema::PLANNR_CHARGES] {
            let text = field_lines(&schema, &read(&["Plan Type", "Client Email"]));
            assert!(text.contains(lookup), "{text}");
            assert!(!text.contains("client_uuid = { value"), "{text}");
        }
        let text = field_lines(&crate::schema::PLANNR_PLANS, &read(&["E-mail"]));
        assert!(text.contains("client_uuid = { column = \"E-mail\", lookup"), "{text}");
        // A uuid column is used as it is; the emails are then left over.
        let text =
            field_lines(&crate::schema::PLANNR_PLANS, &read(&["Client Email", "Client UUID"]));
        assert!(text.contains("client_uuid = \"Client UUID\""), "{text}");
        assert!(!text.contains("lookup"), "{text}");
        // A target whose schema has no field a lookup fills.
        let text = field_lines(&crate::schema::PLANNR_PREMIUMS, &read(&["Client Email"]));
        assert!(!text.contains("lookup"), "{text}");
    }

    #[test]
    fn an_unmatched_required_field_is_a_visible_line() {
        let read = Sample {
            header: vec!["Company".into()],
            columns: vec![vec!["Acme".into()]],
            lines: vec![2],
            rows: 1,
        };
        let text = field_lines(&crate::schema::REPSLY_CLIENTS, &read);
        assert!(text.contains("Code = { value = \"\" }  # REQUIRED"), "{text}");
        let text = field_lines(&crate::schema::PLANNR_CLIENTS, &read);
        assert!(
            text.contains("send_welcome_email = { value = \"false\" }  # REQUIRED by Plannr"),
            "a visible constant: {text}"
        );
    }
}
