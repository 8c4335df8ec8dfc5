//! A finished job's answer made into one outcome per row. A row is `accepted` only when the
//! CRM's own answer leaves no doubt: the rows it names as refused fail, the rows it names with
//! a warning were saved, and the rest are accepted only if its counts account for every row;
//! otherwise they are `unconfirmed`, never accepted.
//!
//! Everything here can only lower confidence: a refusal that fits several rows makes those
//! rows `unconfirmed` rather than failing one at random, a fetched list of refusals only adds
//! to the inline one ([`Fetched`]), and a list is taken as complete only on a count (or a
//! fetched list that covers the inline one), never because it is short.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::adapter::{Fetched, JobReport, RowNote, RowRef};
use crate::row::{Failure, MappedRow, Outcome, Stage};

/// Outcomes for `rows` from `report`; `echo` gives a row as the CRM would echo it.
pub fn outcomes(
    job: &str,
    rows: &[MappedRow],
    report: &JobReport,
    echo: &dyn Fn(&MappedRow) -> Vec<(String, String)>,
) -> Vec<Outcome> {
    let matcher = Matcher::new(rows, echo);
    let refused = Refusals::of(&matcher, &report.refused, report.fetched.as_ref());
    let warned = matcher.assign(&report.warned).named;
    let verdict = verdict(job, rows.len(), &refused, report);
    rows.iter()
        .map(|r| {
            let seq = r.source.seq;
            if let Some(f) = refused.named.get(&seq) {
                return Outcome::Failed(f.clone());
            }
            if let Some(m) = refused.doubtful.get(&seq) {
                return Outcome::Failed(Failure::new(Stage::Unconfirmed, None, m.clone()));
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

/// The refusals of a job, inline and fetched, as rows.
struct Refusals {
    /// Rows one refusal names, and no other row fits.
    named: HashMap<u64, Failure>,
    /// Rows a refusal fits together with other rows: which of them it was is not known.
    doubtful: HashMap<u64, String>,
    /// Refusals that fit several rows (each is one refused row among its candidates).
    ambiguous: usize,
    /// Refusals that fit no row sent.
    unmatched: usize,
    /// The list is the whole list: the fetched one names at least one row and every row the
    /// inline one names.
    fetched_covers: bool,
}

impl Refusals {
    fn of(matcher: &Matcher<'_>, inline: &[RowNote], fetched: Option<&Fetched>) -> Self {
        let mut all = matcher.assign(inline);
        let Some(Fetched(list)) = fetched else { return all.into_refusals(false) };
        let more = matcher.assign(list);
        let covers = more.ambiguous == 0
            && more.unmatched == 0
            && !more.named.is_empty()
            && all.named.keys().all(|s| more.named.contains_key(s));
        for (seq, f) in more.named {
            all.named.entry(seq).or_insert(f);
        }
        for (seq, m) in more.doubtful {
            all.doubtful.entry(seq).or_insert(m);
        }
        all.ambiguous = all.ambiguous.max(more.ambiguous);
        all.unmatched += more.unmatched;
        all.into_refusals(covers)
    }
}

/// What becomes of the rows the CRM did not name.
enum Verdict {
    Accepted,
    Failed(String),
    Unconfirmed(String),
}

fn verdict(job: &str, n: usize, refused: &Refusals, report: &JobReport) -> Verdict {
    let status = &report.status;
    let named = refused.named.len();
    let counted = |what: &str| {
        let saved = report.saved.map_or(String::new(), |s| format!(" {s} saved,"));
        let invalid = report.invalid.map_or(String::new(), |i| format!(" {i} refused,"));
        format!(
            "job {job} ended {status};{saved}{invalid} {named} of the {n} rows sent named as refused{what}; check this row in the CRM before dropping it again"
        )
    };
    if report.failed {
        return match report.saved {
            Some(0) => Verdict::Failed(format!("job {job} ended {status}; it counts 0 rows saved")),
            Some(_) => Verdict::Unconfirmed(counted(", and it failed after saving some")),
            None => {
                Verdict::Unconfirmed(counted(", and it failed without saying how many it saved"))
            }
        };
    }
    if refused.unmatched > 0 {
        return Verdict::Unconfirmed(counted(&format!(
            ", and {} refusal(s) it listed match no row sent",
            refused.unmatched
        )));
    }
    // Each refusal that fits several rows is one refused row among them.
    let refusals = u64::try_from(named.saturating_add(refused.ambiguous)).unwrap_or(u64::MAX);
    let invalid_agrees = report.invalid.is_none_or(|i| i == refusals);
    let settled = match report.saved {
        Some(saved) => saved.checked_add(refusals) == u64::try_from(n).ok() && invalid_agrees,
        None => (report.complete || refused.fetched_covers) && invalid_agrees,
    };
    if settled {
        Verdict::Accepted
    } else if report.saved.is_none() && !report.complete && !refused.fetched_covers {
        Verdict::Unconfirmed(counted(", and its list of refused rows may be incomplete"))
    } else {
        Verdict::Unconfirmed(counted(", which does not add up"))
    }
}

/// Notes assigned to rows, before the fetched list is added.
struct Assigned {
    named: HashMap<u64, Failure>,
    doubtful: HashMap<u64, String>,
    ambiguous: usize,
    unmatched: usize,
}

impl Assigned {
    fn into_refusals(self, fetched_covers: bool) -> Refusals {
        let Assigned { named, mut doubtful, ambiguous, unmatched } = self;
        doubtful.retain(|seq, _| !named.contains_key(seq));
        Refusals { named, doubtful, ambiguous, unmatched, fetched_covers }
    }
}

/// Which rows a note fits.
enum Fits {
    One(u64),
    Several(Vec<u64>),
    None,
}

/// Finds the rows the CRM's notes speak of.
struct Matcher<'a> {
    by_key: HashMap<&'a str, Vec<u64>>,
    lines: HashMap<u64, u64>,
    echoed: Vec<(u64, HashMap<String, String>)>,
}

impl<'a> Matcher<'a> {
    fn new(rows: &'a [MappedRow], echo: &dyn Fn(&MappedRow) -> Vec<(String, String)>) -> Self {
        let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
        for r in rows.iter().filter(|r| !r.key.is_empty()) {
            by_key.entry(r.key.as_str()).or_default().push(r.source.seq);
        }
        let echoed = rows.iter().map(|r| (r.source.seq, echo(r).into_iter().collect())).collect();
        let lines = rows.iter().map(|r| (r.source.seq, r.source.line)).collect();
        Self { by_key, lines, echoed }
    }

    /// Each note's row (several notes of one row merge); a note that fits several rows makes
    /// them doubtful, one that fits none is counted.
    fn assign(&self, notes: &[RowNote]) -> Assigned {
        let mut out = Assigned {
            named: HashMap::new(),
            doubtful: HashMap::new(),
            ambiguous: 0,
            unmatched: 0,
        };
        for note in notes {
            match self.fits(&note.row, &out.named) {
                Fits::One(s) => merge(
                    out.named.entry(s).or_insert_with(|| empty(note.failure.stage)),
                    &note.failure,
                ),
                Fits::Several(seqs) => {
                    out.ambiguous += 1;
                    let lines: Vec<String> =
                        seqs.iter().filter_map(|s| self.lines.get(s)).map(u64::to_string).collect();
                    let why = note.failure.messages.join("; ");
                    let msg = format!("the CRM refused one row that fits lines {} alike ({why}); which one is not known: check this row in the CRM before dropping it again", lines.join(", "));
                    for s in seqs {
                        out.doubtful.entry(s).or_insert_with(|| msg.clone());
                    }
                }
                Fits::None => out.unmatched += 1,
            }
        }
        out
    }

    fn fits(&self, row: &RowRef, taken: &HashMap<u64, Failure>) -> Fits {
        match row {
            RowRef::Key(k) => match self.by_key.get(k.as_str()).map(Vec::as_slice) {
                Some([one]) => Fits::One(*one),
                Some([]) | None => Fits::None,
                Some(several) => Fits::Several(several.to_vec()),
            },
            RowRef::Seq(s) if self.lines.contains_key(s) => Fits::One(*s),
            RowRef::Data(data) => {
                // A correlation number the CRM echoed back decides; else the one row not yet
                // matched whose sent values agree with everything echoed.
                if let Some(seq) = data.get(CORRELATION).map(as_cell).and_then(|s| s.parse().ok()) {
                    if self.lines.contains_key(&seq) {
                        return Fits::One(seq);
                    }
                }
                let fit: Vec<u64> = self
                    .echoed
                    .iter()
                    .filter(|(seq, cells)| !taken.contains_key(seq) && agrees(cells, data))
                    .map(|(seq, _)| *seq)
                    .collect();
                match fit.as_slice() {
                    [] => Fits::None,
                    [one] => Fits::One(*one),
                    _ => Fits::Several(fit),
                }
            }
            RowRef::Seq(_) | RowRef::Unknown => Fits::None,
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
            partition: Default::default(),
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
        let report = JobReport { saved: None, ..report };
        assert_eq!(
            stages(&outcomes("7", &rows, &report, &no_echo)),
            ["unconfirmed"],
            "\"nothing saved\" needs a count behind it"
        );
    }

    fn data(first_name: &str) -> RowNote {
        let v = json!({ "first_name": first_name });
        note(RowRef::Data(v.as_object().unwrap().clone()))
    }

    fn named_echo(r: &MappedRow) -> Vec<(String, String)> {
        let name = if r.source.seq == 3 { "N1".to_string() } else { format!("N{}", r.source.seq) };
        vec![("first_name".to_string(), name)]
    }

    #[test]
    fn a_fetched_list_only_adds_refusals() {
        let rows = [row(0, ""), row(1, ""), row(2, "")];
        let report = JobReport {
            status: "complete".into(),
            refused: vec![data("N1")],
            fetched: Some(Fetched(Vec::new())),
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &named_echo)),
            ["unconfirmed", "remote", "unconfirmed"],
            "an empty report (a header only) accepts nothing"
        );
        let report = JobReport { fetched: Some(Fetched(vec![data("N2")])), ..report };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &named_echo)),
            ["unconfirmed", "remote", "remote"],
            "a report that leaves out an inline refusal adds to it and proves nothing"
        );
        let report = JobReport { fetched: Some(Fetched(vec![data("N1"), data("N2")])), ..report };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &named_echo)),
            ["accepted", "remote", "remote"],
            "a report that covers the inline list is the whole list"
        );
    }

    #[test]
    fn a_short_list_is_no_proof_and_a_refusal_must_fit_one_row() {
        let rows = [row(0, ""), row(1, "")];
        let report = JobReport {
            status: "complete".into(),
            refused: vec![data("N1")],
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &named_echo)),
            ["unconfirmed", "remote"],
            "one inline refusal of 25 possible does not make the list complete"
        );
        // Rows 1 and 3 were sent alike: a refusal of that data fits both.
        let rows = [row(0, ""), row(1, ""), row(3, "")];
        let report = JobReport { complete: true, ..report };
        assert_eq!(
            stages(&outcomes("u", &rows, &report, &named_echo)),
            ["accepted", "unconfirmed", "unconfirmed"]
        );
        let keyed = [row(0, "A"), row(1, "A"), row(2, "B")];
        let report = JobReport {
            status: "Completed".into(),
            refused: vec![note(RowRef::Key("A".into()))],
            saved: Some(2),
            invalid: Some(1),
            ..Default::default()
        };
        assert_eq!(
            stages(&outcomes("7", &keyed, &report, &no_echo)),
            ["unconfirmed", "unconfirmed", "accepted"]
        );
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
