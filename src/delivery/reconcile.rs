//! A finished job's answer made into one outcome per row. A row is `accepted` only when the
//! CRM's own answer leaves no doubt: the rows it names as refused fail, the rows it names with
//! a warning were saved, and the rest are accepted only if its counts account for every row;
//! otherwise they are `unconfirmed`, never accepted.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::adapter::{JobReport, RowNote, RowRef};
use crate::row::{Failure, MappedRow, Outcome, Stage};

/// Outcomes for `rows` from `report`; `echo` gives a row as the CRM would echo it.
pub fn outcomes(
    job: &str,
    rows: &[MappedRow],
    report: &JobReport,
    echo: &dyn Fn(&MappedRow) -> Vec<(String, String)>,
) -> Vec<Outcome> {
    let matcher = Matcher::new(rows, echo);
    let (refused, unmatched) = matcher.assign(&report.refused);
    let (warned, _) = matcher.assign(&report.warned);
    let verdict = verdict(job, rows.len(), refused.len(), unmatched, report);
    rows.iter()
        .map(|r| {
            let seq = r.source.seq;
            if let Some(f) = refused.get(&seq) {
                return Outcome::Failed(f.clone());
            }
            if let Some(w) = warned.get(&seq) {
                let mut w = w.clone();
                w.stage = Stage::Warning;
                return Outcome::Warned(w);
            }
            match &verdict {
                Verdict::Accepted => Outcome::Accepted,
                Verdict::Failed(m) => Outcome::Failed(Failure::new(Stage::Remote, None, m.clone())),
                Verdict::Unconfirmed(m) => {
                    Outcome::Failed(Failure::new(Stage::Unconfirmed, None, m.clone()))
                }
            }
        })
        .collect()
}

/// What becomes of the rows the CRM did not name.
enum Verdict {
    Accepted,
    Failed(String),
    Unconfirmed(String),
}

fn verdict(job: &str, n: usize, named: usize, unmatched: usize, report: &JobReport) -> Verdict {
    let status = &report.status;
    let counted = |what: &str| {
        let saved = report.saved.map_or(String::new(), |s| format!(" {s} saved,"));
        let invalid = report.invalid.map_or(String::new(), |i| format!(" {i} refused,"));
        format!(
            "job {job} ended {status};{saved}{invalid} {named} of the {n} rows sent named as refused{what}; check this row in the CRM before dropping it again"
        )
    };
    if report.failed {
        return match report.saved {
            None | Some(0) => {
                Verdict::Failed(format!("job {job} ended {status}; nothing of it was saved"))
            }
            Some(_) => Verdict::Unconfirmed(counted(", and it failed after saving some")),
        };
    }
    if unmatched > 0 {
        return Verdict::Unconfirmed(counted(&format!(
            ", and {unmatched} refusal(s) it listed match no row sent"
        )));
    }
    let invalid_agrees = report.invalid.is_none_or(|i| i as usize == named);
    let settled = match report.saved {
        Some(saved) => saved as usize + named == n && invalid_agrees,
        None => report.complete && invalid_agrees,
    };
    if settled {
        Verdict::Accepted
    } else if report.saved.is_none() && !report.complete {
        Verdict::Unconfirmed(counted(", and its list of refused rows may be incomplete"))
    } else {
        Verdict::Unconfirmed(counted(", which does not add up"))
    }
}

/// Finds the rows the CRM's notes speak of.
struct Matcher<'a> {
    rows: &'a [MappedRow],
    by_key: HashMap<&'a str, Vec<u64>>,
    seqs: HashSet<u64>,
    echoed: Vec<(u64, HashMap<String, String>)>,
}

impl<'a> Matcher<'a> {
    fn new(rows: &'a [MappedRow], echo: &dyn Fn(&MappedRow) -> Vec<(String, String)>) -> Self {
        let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
        for r in rows.iter().filter(|r| !r.key.is_empty()) {
            by_key.entry(r.key.as_str()).or_default().push(r.source.seq);
        }
        let echoed = rows.iter().map(|r| (r.source.seq, echo(r).into_iter().collect())).collect();
        Self { rows, by_key, seqs: rows.iter().map(|r| r.source.seq).collect(), echoed }
    }

    /// Each note's row (several notes of one row merge); also how many notes matched none.
    fn assign(&self, notes: &[RowNote]) -> (HashMap<u64, Failure>, usize) {
        let mut out: HashMap<u64, Failure> = HashMap::new();
        let mut unmatched = 0;
        for note in notes {
            let seqs = self.find(&note.row, &out);
            if seqs.is_empty() {
                unmatched += 1;
            }
            for s in seqs {
                merge(out.entry(s).or_insert_with(|| empty(note.failure.stage)), &note.failure);
            }
        }
        let _ = self.rows;
        (out, unmatched)
    }

    fn find(&self, row: &RowRef, taken: &HashMap<u64, Failure>) -> Vec<u64> {
        match row {
            RowRef::Key(k) => self.by_key.get(k.as_str()).cloned().unwrap_or_default(),
            RowRef::Seq(s) if self.seqs.contains(s) => vec![*s],
            RowRef::Data(data) => {
                // A correlation number the CRM echoed back decides; else the first row not
                // yet matched whose sent values agree with everything echoed.
                if let Some(seq) = data.get(CORRELATION).map(as_cell).and_then(|s| s.parse().ok()) {
                    if self.seqs.contains(&seq) {
                        return vec![seq];
                    }
                }
                self.echoed
                    .iter()
                    .find(|(seq, cells)| !taken.contains_key(seq) && agrees(cells, data))
                    .map(|(seq, _)| vec![*seq])
                    .unwrap_or_default()
            }
            RowRef::Seq(_) | RowRef::Unknown => Vec::new(),
        }
    }
}

/// The unmapped column a client adds to each row it uploads, holding the row's number.
pub const CORRELATION: &str = "crm_ingest_row";

fn agrees(sent: &HashMap<String, String>, echoed: &Map<String, Value>) -> bool {
    let mut compared = 0;
    for (k, v) in echoed {
        if let Some(s) = sent.get(k) {
            if s.trim() != as_cell(v) {
                return false;
            }
            compared += 1;
        }
    }
    compared > 0
}

/// A JSON value as the text a CSV cell would hold: a CRM built on Laravel turns `""` into
/// null and may cast `"1"` to `true`.
pub fn as_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) => "0".into(),
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

fn empty(stage: Stage) -> Failure {
    Failure { stage, fields: Vec::new(), messages: Vec::new() }
}

fn merge(into: &mut Failure, from: &Failure) {
    for f in &from.fields {
        if !into.fields.contains(f) {
            into.fields.push(f.clone());
        }
    }
    into.messages.extend(from.messages.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::SourceRow;
    use serde_json::json;

    fn row(seq: u64, key: &str) -> MappedRow {
        MappedRow {
            source: SourceRow { seq, line: seq + 2, raw: Default::default() },
            key: key.into(),
            body: Vec::new(),
            group: 0,
        }
    }

    fn note(r: RowRef) -> RowNote {
        RowNote { row: r, failure: Failure::new(Stage::Remote, Some("Name"), "bad") }
    }

    fn stages(o: &[Outcome]) -> Vec<&'static str> {
        o.iter()
            .map(|o| match o {
                Outcome::Accepted => "accepted",
                Outcome::Warned(_) => "warned",
                Outcome::Failed(f) => f.stage.as_str(),
            })
            .collect()
    }

    fn no_echo(_: &MappedRow) -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn counts_that_add_up_accept_the_rest() {
        let rows = [row(0, "A"), row(1, "B"), row(2, "C")];
        let report = JobReport {
            status: "Completed".into(),
            refused: vec![note(RowRef::Key("B".into()))],
            warned: vec![note(RowRef::Key("C".into()))],
            saved: Some(2),
            invalid: Some(1),
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("7", &rows, &report, &no_echo)),
            ["accepted", "remote", "warned"]
        );
    }

    #[test]
    fn a_refusal_that_names_no_row_leaves_the_rest_unconfirmed() {
        let rows = [row(0, "A"), row(1, "B")];
        let report = JobReport {
            status: "Completed".into(),
            refused: vec![note(RowRef::Key("42".into()))],
            saved: Some(1),
            invalid: Some(1),
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("7", &rows, &report, &no_echo)),
            ["unconfirmed", "unconfirmed"]
        );
        // RowsInvalid with no Errors at all, too.
        let report = JobReport { refused: vec![], ..report };
        assert_eq!(
            stages(&outcomes("7", &rows, &report, &no_echo)),
            ["unconfirmed", "unconfirmed"]
        );
    }

    #[test]
    fn without_counts_only_a_complete_list_accepts() {
        let rows = [row(0, ""), row(1, ""), row(2, "")];
        let echo = |r: &MappedRow| vec![("first_name".to_string(), format!("N{}", r.source.seq))];
        let data = json!({"first_name": "N1", "last_name": null}).as_object().unwrap().clone();
        let mut report = JobReport {
            status: "complete".into(),
            refused: vec![note(RowRef::Data(data))],
            complete: true,
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &echo)),
            ["accepted", "remote", "accepted"]
        );
        report.complete = false;
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &echo)),
            ["unconfirmed", "remote", "unconfirmed"]
        );
    }

    #[test]
    fn a_failed_job_that_saved_nothing_fails_its_rows() {
        let rows = [row(0, "A")];
        let report = JobReport {
            status: "Failed".into(),
            failed: true,
            saved: Some(0),
            ..Default::default()
        };
        assert_eq!(stages(&outcomes("7", &rows, &report, &no_echo)), ["remote"]);
        let report = JobReport { saved: Some(1), ..report };
        assert_eq!(stages(&outcomes("7", &rows, &report, &no_echo)), ["unconfirmed"]);
    }

    #[test]
    fn the_correlation_number_decides_over_the_data() {
        let rows = [row(10, ""), row(11, "")];
        let data =
            json!({"crm_ingest_row": "11", "first_name": "whatever"}).as_object().unwrap().clone();
        let report = JobReport {
            status: "complete".into(),
            refused: vec![note(RowRef::Data(data))],
            complete: true,
            ..Default::default()
        };
        assert_eq!(stages(&outcomes("u", &rows, &report, &no_echo)), ["accepted", "remote"]);
    }
}
