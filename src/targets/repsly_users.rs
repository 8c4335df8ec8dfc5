//! Repsly's user import answers inline: `{"Code": 0, "Message": ..., "Summary": {...}}`, the
//! summary holding the account's active users before and after (`CurrentUsersActive`,
//! `NewUsersActive`: Repsly bills by them), the rows inserted, updated and refused, and
//! `ValidationErrors` (each refused user's reasons, by its identifier, the Code).

use serde_json::Value as Json;

use super::repsly::field;
use crate::delivery::{Created, JobReport, RowNote, RowRef};
use crate::row::{Failure, Seats, Stage};

/// What an accepted user import's answer says about its `rows` rows.
pub fn read(answer: &Json, rows: usize) -> Created {
    let Some(summary) = field(answer, "Summary") else {
        return Created::Unclear(format!(
            "Repsly accepted the {rows} users but its answer has no Summary: {}",
            answer.to_string().chars().take(200).collect::<String>()
        ));
    };
    let count = |k: &str| field(summary, k).and_then(Json::as_u64);
    let saved = match (count("RowsInsert"), count("RowsUpdate")) {
        (None, None) => count("RowsTotal"),
        (i, u) => i.unwrap_or(0).checked_add(u.unwrap_or(0)),
    };
    let seats = match (count("CurrentUsersActive"), count("NewUsersActive")) {
        (Some(before), Some(after)) => Some(Seats { before, after }),
        _ => None,
    };
    Created::Done(Box::new(JobReport {
        status: "Completed".into(),
        refused: refusals(field(summary, "ValidationErrors")),
        saved,
        invalid: count("RowsInvalid"),
        seats,
        ..JobReport::default()
    }))
}

/// `{"<Code>": ["reason", ...], ...}`: one refusal per user named.
fn refusals(errors: Option<&Json>) -> Vec<RowNote> {
    let Some(Json::Object(by_user)) = errors else { return Vec::new() };
    by_user
        .iter()
        .map(|(code, reasons)| {
            let messages: Vec<String> = match reasons {
                Json::Array(list) => list
                    .iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), String::from))
                    .collect(),
                Json::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            let messages = if messages.is_empty() { vec!["refused".into()] } else { messages };
            let failure = Failure { stage: Stage::Remote, fields: Vec::new(), messages };
            RowNote { row: RowRef::Key(code.clone()), failure }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_gives_counts_refusals_and_seats() {
        let answer = json!({"Code": 0, "Message": "ok", "Summary": {
            "CurrentUsersActive": 4, "NewUsersActive": 6, "RowsTotal": 2, "RowsInsert": 2,
            "RowsUpdate": 0, "RowsInvalid": 1, "ValidationErrors": {"U3": ["Email is not valid"]}
        }});
        let Created::Done(report) = read(&answer, 3) else { panic!("an inline answer") };
        assert_eq!((report.saved, report.invalid), (Some(2), Some(1)));
        assert_eq!(report.seats, Some(Seats { before: 4, after: 6 }));
        assert_eq!(report.refused[0].row, RowRef::Key("U3".into()));
        assert_eq!(report.refused[0].failure.messages, ["Email is not valid"]);
        assert!(matches!(read(&json!({"Code": 0}), 3), Created::Unclear(_)));
        let nulls = json!({"Code": 0, "Summary": {"RowsInsert": null, "RowsUpdate": null}});
        let Created::Done(report) = read(&nulls, 1) else { panic!() };
        assert_eq!((report.saved, report.seats), (None, None), "no count is no count");
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_read_without_panic(text in ".{0,200}", n in proptest::num::u64::ANY) {
            let _ = read(&Json::String(text.clone()), 2);
            let wild = json!({"Summary": {"RowsInsert": n, "RowsUpdate": n, "ValidationErrors": {"x": [text, 1, null]}}});
            let _ = read(&wild, 2);
        }
    }
}
