//! Plannr reports an import's failed rows by their data, not their line. Each row sent carries
//! an unmapped `crm_ingest_row` column with its `seq`; when Plannr echoes it, that decides.
//! Otherwise a failure is matched to the first row not yet matched whose sent values agree
//! with every value Plannr echoed.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::plannr_common::as_cell;
use crate::row::Failure;

pub const CORRELATION: &str = "crm_ingest_row";

/// A row as it was sent: its seq and its cells by column name.
#[derive(Debug, Clone)]
pub struct SentRow {
    pub seq: u64,
    pub cells: HashMap<String, String>,
}

/// Assigns each failure to a sent row. Returns the failures by seq and how many matched none.
pub fn assign(
    sent: &[SentRow],
    failures: Vec<(Map<String, Value>, Failure)>,
) -> (HashMap<u64, Failure>, usize) {
    let mut out: HashMap<u64, Failure> = HashMap::new();
    let mut unmatched = 0;
    for (data, failure) in failures {
        let by_tag = data
            .get(CORRELATION)
            .map(as_cell)
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| sent.iter().any(|r| r.seq == *s));
        let seq = by_tag.or_else(|| {
            sent.iter().find(|r| !out.contains_key(&r.seq) && agrees(r, &data)).map(|r| r.seq)
        });
        match seq {
            Some(s) => merge(
                out.entry(s).or_insert_with(|| Failure {
                    stage: failure.stage,
                    fields: Vec::new(),
                    messages: Vec::new(),
                }),
                failure,
            ),
            None => unmatched += 1,
        }
    }
    (out, unmatched)
}

fn agrees(row: &SentRow, data: &Map<String, Value>) -> bool {
    let mut compared = 0;
    for (k, v) in data {
        if let Some(sent) = row.cells.get(k) {
            if sent.trim() != as_cell(v) {
                return false;
            }
            compared += 1;
        }
    }
    compared > 0
}

fn merge(into: &mut Failure, from: Failure) {
    for f in from.fields {
        if !into.fields.contains(&f) {
            into.fields.push(f);
        }
    }
    into.messages.extend(from.messages);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Stage;
    use serde_json::json;

    fn row(seq: u64, pairs: &[(&str, &str)]) -> SentRow {
        SentRow { seq, cells: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn fail(v: Value) -> (Map<String, Value>, Failure) {
        (v.as_object().unwrap().clone(), Failure::new(Stage::Remote, Some("x"), "bad"))
    }

    #[test]
    fn by_tag_then_by_data_with_duplicates_in_order() {
        let sent = vec![
            row(10, &[("first_name", "Ann"), ("last_name", ""), ("send_welcome_email", "0")]),
            row(11, &[("first_name", "Ann"), ("last_name", ""), ("send_welcome_email", "0")]),
            row(12, &[("first_name", "Bob"), ("last_name", "Ray"), ("send_welcome_email", "1")]),
        ];
        let (by_seq, unmatched) = assign(
            &sent,
            vec![
                fail(json!({"first_name": "Ann", "last_name": null, "send_welcome_email": false})),
                fail(json!({"first_name": "Ann", "last_name": null})),
                fail(json!({"crm_ingest_row": "12", "first_name": "whatever"})),
                fail(json!({"first_name": "Zed"})),
            ],
        );
        assert_eq!(
            by_seq.keys().copied().collect::<std::collections::BTreeSet<_>>(),
            [10, 11, 12].into()
        );
        assert_eq!(unmatched, 1);
    }
}
