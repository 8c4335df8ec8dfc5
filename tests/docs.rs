//! The README and `docs/` (issue 21, row 12): the README starts with the two commands, speaks
//! to the person who runs the service, links every page of `docs/`, and its links and the
//! configuration page's copy of `config/example.toml` do not rot. The docs cannot drift from
//! the code: every TOML example goes through the real config parser (laid over
//! `config/example.toml` when it is a fragment), every key of the settings tables is one the
//! parser takes, and every link to a section names a heading of its page.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_readme_starts_with_the_demo_and_the_tests() {
    let readme = read("README.md");
    let block = readme.split("```").nth(1).unwrap();
    let commands: Vec<&str> =
        block.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(|_| l)).collect();
    assert!(commands[0].starts_with("cargo run --release -- demo"), "{commands:?}");
    assert!(commands[1].starts_with("cargo test"), "{commands:?}");
    assert!(readme.find("```").unwrap() < 30, "the commands come first");
}

#[test]
fn the_readme_has_no_word_an_operator_does_not_know() {
    let readme = read("README.md");
    for word in ["GCRA", "WAL", "ETag", "Laravel", "the contract", "idempot", "watermark"] {
        assert!(!readme.contains(word), "README says `{word}`");
    }
    // An alias that survives a `cd`: an absolute path.
    for line in readme.lines().filter(|l| l.contains("alias crm-ingest=")) {
        let target =
            line.split("alias crm-ingest=").nth(1).unwrap().trim_start_matches(['"', '\'']);
        assert!(target.starts_with('/') || target.starts_with("$PWD"), "{line}");
    }
}

#[test]
fn every_docs_page_is_linked_and_every_link_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = read("README.md");
    let pages: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    assert!(pages.len() >= 9, "{pages:?}");
    for page in &pages {
        assert!(readme.contains(&format!("(docs/{page})")), "README does not link docs/{page}");
    }
    let mut files = vec![("README.md".to_string(), readme)];
    files.extend(pages.iter().map(|p| (format!("docs/{p}"), read(&format!("docs/{p}")))));
    for (name, text) in &files {
        let dir = Path::new(name).parent().unwrap();
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            let path = link.split('#').next().unwrap();
            if path.is_empty() || path.starts_with("http") {
                continue;
            }
            assert!(root.join(dir).join(path).exists(), "{name}: broken link {link}");
        }
    }
}

#[test]
fn the_configuration_page_shows_the_example_config_as_it_is() {
    let page = read("docs/configuration.md");
    let example = read("config/example.toml");
    assert!(
        page.contains(&format!("```toml\n{example}```")),
        "docs/configuration.md is out of date with config/example.toml"
    );
}

#[test]
fn the_plannr_import_types_table_lists_every_type_the_schema_knows() {
    let page = read("docs/targets.md");
    for t in crm_ingest::schema::PLANNR_IMPORT_TYPES {
        assert!(page.contains(&format!("`{t}`")), "docs/targets.md lacks {t}");
    }
    for def in crm_ingest::schema::PLANNR_CLIENTS.fields {
        assert!(page.contains(&format!("`{}`", def.name)), "docs/targets.md lacks {}", def.name);
    }
}

/// The README and every page of `docs/`, as (name, text).
fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names.insert(0, "README.md".into());
    names.into_iter().map(|n| (n.clone(), read(&n))).collect()
}

/// The ```toml blocks of a page.
fn toml_blocks(text: &str) -> Vec<String> {
    text.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap().to_string()).collect()
}

/// `into` with `from` laid over it: tables merged key by key, `[[notify]]` tables added.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (Some(toml::Value::Array(a)), toml::Value::Array(b)) if key == "notify" => a.extend(b),
            (_, v) => {
                into.insert(key, v);
            }
        }
    }
}

/// A docs example made a whole config: laid over `config/example.toml`, with each pipeline it
/// names but the example lacks copied from the example's pipeline of the same CRM.
fn as_whole_config(block: &str) -> String {
    let mut fragment: toml::Table = block.parse().unwrap_or_else(|e| panic!("{e}\n{block}"));
    // `source = { ... }` alone (docs/sources.md) is the inside of a pipeline table: the top
    // level has no key of that name.
    if fragment.contains_key("source") {
        let inner = std::mem::take(&mut fragment);
        fragment.insert(
            "pipelines".into(),
            toml::Value::Table(
                [("repsly_clients".to_string(), inner.into())].into_iter().collect(),
            ),
        );
    }
    let mut base: toml::Table = read("config/example.toml").parse().unwrap();
    let mut named: Vec<String> = fragment
        .get("pipelines")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    for n in fragment.get("notify").and_then(toml::Value::as_array).into_iter().flatten() {
        let listed = n.get("pipelines").and_then(toml::Value::as_array).into_iter().flatten();
        named.extend(listed.filter_map(|p| p.as_str().map(String::from)));
    }
    let pipelines = base["pipelines"].as_table_mut().unwrap();
    for name in named {
        if !pipelines.contains_key(&name) {
            let like = if name.contains("plannr") { "new_clients" } else { "repsly_clients" };
            let copy = pipelines[like].clone();
            pipelines.insert(name, copy);
        }
    }
    merge(&mut base, fragment);
    toml::to_string(&base).unwrap()
}

#[test]
fn every_toml_example_goes_through_the_config_parser() {
    use crm_ingest::config::{parse_for, Purpose};
    // Relative paths resolve as in config/example.toml, which every example is laid over.
    let at = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let mut checked = 0;
    for (name, text) in pages() {
        for block in toml_blocks(&text) {
            let whole = as_whole_config(&block);
            if let Err(e) = parse_for(&at, &whole, &|_| None, Purpose::Plan) {
                // Folders of the reader's own machine (`/srv/crm-ingest/...`) are not here.
                let real: Vec<String> = e
                    .0
                    .iter()
                    .map(|p| p.message.clone())
                    .filter(|m| !(m.contains("source folder /") && m.contains("does not exist")))
                    .collect();
                assert!(real.is_empty(), "{name}: this example is refused:\n{block}\n{real:#?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} TOML examples found");
}

/// The TOML that sets `key` of the settings table under `context` (the table a heading line
/// names, or `[t]` given in the cell before the key, as in "`[server] token`, `token_file`").
fn setting(context: &str, key: &str) -> String {
    let table = match context {
        "[[notify]]" => "[[notify]]".to_string(),
        c if c.starts_with("[connections.") => "[connections.c]".into(),
        c if c.starts_with("[pipelines.") => "[pipelines.p]".into(),
        c => c.to_string(),
    };
    match key.strip_prefix("[pipelines.NAME.").and_then(|k| k.strip_suffix(']')) {
        Some(sub) => format!("[pipelines.p.{sub}]\n"),
        None => format!("{table}\n{key} = 0\n"),
    }
}

/// The keys of each row of the `| key |` tables of a page, with the table each belongs to.
fn settings_keys(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let (mut in_code, mut in_table) = (false, false);
    let mut context = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            if line.starts_with('#') {
                context.clear();
            } else if let Some(t) = line.split('`').nth(1).filter(|t| t.starts_with('[')) {
                context = t.to_string();
            }
            continue;
        }
        if line.starts_with("| key |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let mut table = context.clone();
        for key in line.split('|').nth(1).unwrap().split('`').skip(1).step_by(2) {
            let key = match key.strip_prefix('[').and_then(|k| k.split_once("] ")) {
                Some((t, k)) => {
                    table = format!("[{t}]");
                    k
                }
                None => key,
            };
            out.push((i + 1, table.clone(), key.to_string()));
        }
    }
    out
}

#[test]
fn every_key_in_the_settings_tables_is_one_the_parser_takes() {
    use crm_ingest::config::{parse_for, Purpose};
    let at = Path::new("settings.toml");
    let mut seen = 0;
    for name in ["docs/configuration.md", "docs/console.md"] {
        for (line, context, key) in settings_keys(&read(name)) {
            let toml = setting(&context, &key);
            let unknown: Vec<String> = match parse_for(at, &toml, &|_| None, Purpose::Plan) {
                Ok(_) => Vec::new(),
                Err(e) => {
                    e.0.into_iter()
                        .map(|p| p.message)
                        .filter(|m| m.contains("unknown key"))
                        .collect()
                }
            };
            assert!(unknown.is_empty(), "{name} line {line}: `{key}` in `{context}`: {unknown:?}");
            seen += 1;
        }
    }
    assert!(seen >= 40, "only {seen} keys found in the settings tables");
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_to_a_section_names_a_heading_of_that_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for (name, text) in pages() {
        let dir = Path::new(&name).parent().unwrap().to_path_buf();
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            let Some((file, section)) = link.split_once('#') else { continue };
            if link.starts_with("http") {
                continue;
            }
            let target =
                if file.is_empty() { root.join(&name) } else { root.join(&dir).join(file) };
            let page = std::fs::read_to_string(&target).unwrap();
            let mut in_code = false;
            let anchors: Vec<String> = page
                .lines()
                .filter(|l| {
                    in_code ^= l.starts_with("```");
                    !in_code && l.starts_with('#')
                })
                .map(anchor)
                .collect();
            assert!(
                anchors.iter().any(|a| a == section),
                "{name}: link {link}: no such heading in {file} ({anchors:?})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} section links found");
}
