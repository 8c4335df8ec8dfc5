//! Values looked up in the CRM before a row is sent: `lookup = { by = "email" }` on a field
//! (a Plannr plan's `client_uuid` found by the client's primary email). The target says how
//! to ask and how to read the answer ([`Target::lookup_call`], [`Target::read_lookup`]); this
//! asks each key once per file (answers are kept for the file), through the connection, so
//! its rate budget, in-flight limit and retries pace the lookups like any other call. A row
//! whose key finds no record, or several, fails at `validate` saying so; nothing of it is
//! sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::Target;
use crate::delivery::{CallError, Connection};
use crate::mapping::spec::LookupBy;
use crate::row::{Failure, MappedRow, SourceRow, Stage};

/// Pages of one key's answer read at most (500 records a page on Plannr): a key that
/// matches more, even partly, is too vague to tell one record by.
pub const MAX_PAGES: u32 = 20;

/// A field a lookup fills: its position among the pipeline's fields, its name, and what its
/// value (the key) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupField {
    pub at: usize,
    pub name: String,
    pub by: LookupBy,
}

/// What one key found.
#[derive(Debug, Clone)]
enum Found {
    One(String),
    Failed(Stage, String),
}

/// The lookups of one file.
pub struct Lookups {
    target: Arc<dyn Target>,
    conn: Arc<Connection>,
    /// Answers by (field position, key as asked).
    found: Mutex<HashMap<(usize, String), Found>>,
}

impl Lookups {
    /// The lookups of a file sent through `conn`, when its target has any.
    pub fn new(target: Arc<dyn Target>, conn: Arc<Connection>) -> Option<Self> {
        (!target.lookups().is_empty()).then(|| Self {
            target,
            conn,
            found: Mutex::new(HashMap::new()),
        })
    }

    /// Fills each row's looked-up fields; rows whose lookup failed come back as failures,
    /// in the order given. `None` when shutdown stopped a lookup (the rows stay unsettled).
    pub async fn fill(
        &self,
        rows: Vec<MappedRow>,
    ) -> Option<(Vec<MappedRow>, Vec<(SourceRow, Failure)>)> {
        let fields = self.target.lookups().to_vec();
        let wanted: Vec<(usize, LookupBy, String)> = {
            let found = self.found.lock().ok()?;
            let mut keys: Vec<(usize, LookupBy, String)> = Vec::new();
            for r in &rows {
                for f in &fields {
                    let key = self.key_of(r, f);
                    let new = !found.contains_key(&(f.at, key.clone()))
                        && !keys.iter().any(|(at, _, k)| *at == f.at && *k == key);
                    if new && !key.is_empty() {
                        keys.push((f.at, f.by, key));
                    }
                }
            }
            keys
        };
        let limit = self.conn.settings().max_in_flight.max(1);
        let answers: Vec<((usize, String), Found)> = futures::stream::iter(wanted)
            .map(|(at, by, key)| async move { ((at, key.clone()), self.find(by, &key).await) })
            .buffer_unordered(limit)
            .collect()
            .await;
        if answers
            .iter()
            .any(|(_, f)| matches!(f, Found::Failed(Stage::Unprocessed, m) if m == STOPPED))
        {
            return None;
        }
        let mut found = self.found.lock().ok()?;
        found.extend(answers);
        let mut ready = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        'rows: for mut r in rows {
            for f in &fields {
                let key = self.key_of(&r, f);
                match found.get(&(f.at, key)) {
                    Some(Found::One(id)) => self.target.fill(&mut r, f.at, id),
                    Some(Found::Failed(stage, why)) => {
                        failed.push((r.source, Failure::new(*stage, Some(&f.name), why.clone())));
                        continue 'rows;
                    }
                    // An empty key: the mapper refused it already if the field is required.
                    None => {}
                }
            }
            ready.push(r);
        }
        Some((ready, failed))
    }

    /// The key a row's field holds, as asked (trimmed; emails in lowercase).
    fn key_of(&self, row: &MappedRow, f: &LookupField) -> String {
        let key = self.target.cell(row, f.at).unwrap_or_default();
        match f.by {
            LookupBy::Email => key.trim().to_lowercase(),
        }
    }

    /// The one record `key` names, asked page by page.
    async fn find(&self, by: LookupBy, key: &str) -> Found {
        let base = self.conn.base_url();
        let mut ids: Vec<String> = Vec::new();
        for page in 1..=MAX_PAGES {
            let Some(call) = self.target.lookup_call(&base, by, key, page) else {
                return Found::Failed(Stage::Validate, "this target cannot look records up".into());
            };
            let reply = match self.conn.call(call).await {
                Ok(reply) => reply,
                Err(e) => return failed_call(key, &e),
            };
            match self.target.read_lookup(by, key, &reply) {
                Ok((found, more)) => {
                    ids.extend(found);
                    if !more {
                        return verdict(by, key, ids);
                    }
                }
                Err(e) => {
                    return Found::Failed(
                        Stage::Remote,
                        format!("the lookup of `{key}` was answered with something unreadable ({e}); nothing of this row was sent"),
                    )
                }
            }
        }
        Found::Failed(
            Stage::Validate,
            format!("more than {} pages of records match `{key}` in part: too many to tell which one is meant; give the id instead", MAX_PAGES),
        )
    }
}

/// Marks a lookup stopped by shutdown.
const STOPPED: &str = "stopped by shutdown";

fn failed_call(key: &str, e: &CallError) -> Found {
    match e {
        CallError::Cancelled { .. } => Found::Failed(Stage::Unprocessed, STOPPED.into()),
        CallError::Auth { .. } => Found::Failed(
            Stage::Unprocessed,
            format!("the client behind `{key}` could not be looked up: {e}; nothing of this row was sent"),
        ),
        _ => Found::Failed(
            Stage::Remote,
            format!("the lookup of `{key}` failed: {e}; nothing of this row was sent"),
        ),
    }
}

fn verdict(by: LookupBy, key: &str, mut ids: Vec<String>) -> Found {
    ids.sort();
    ids.dedup();
    let what = match by {
        LookupBy::Email => "primary email",
    };
    match ids.len() {
        1 => Found::One(ids.remove(0)),
        0 => Found::Failed(Stage::Validate, format!("no client has the {what} `{key}`")),
        n => Found::Failed(
            Stage::Validate,
            format!("{n} clients have the {what} `{key}` ({}): which one is meant cannot be told; give its uuid instead", ids.join(", ")),
        ),
    }
}
