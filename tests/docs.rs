//! The README and `docs/` (issue 21, row 12): the README starts with the two commands, speaks
//! to the person who runs the service, links every page of `docs/`, and its links and the
//! configuration page's copy of `config/example.toml` do not rot.

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
