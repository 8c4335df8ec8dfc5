//! The value a target field holds between the mapper and the target encoder. It borrows from
//! the source row where it can: a cell that no transform changes is never copied.

use std::borrow::Cow;

/// Text, or a list once `split:` has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

impl<'a> Value<'a> {
    pub fn text(s: impl Into<Cow<'a, str>>) -> Self {
        Value::Text(s.into())
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Value::Text(t) => super::text::is_blank(t),
            Value::List(l) => l.iter().all(|s| super::text::is_blank(s)),
        }
    }

    /// Each text item: the text itself, or every list element (no allocation: validators
    /// call this for every row).
    pub fn items(&self) -> impl Iterator<Item = &str> + '_ {
        let (one, many): (Option<&str>, &[Cow<'a, str>]) = match self {
            Value::Text(t) => (Some(t.as_ref()), &[]),
            Value::List(l) => (None, l.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }

    /// For messages and text fields: the value as the user would recognise it.
    pub fn display(&self) -> String {
        match self {
            Value::Text(t) => t.to_string(),
            Value::List(l) => l.join("|"),
        }
    }

    /// The text, when it is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            Value::List(_) => None,
        }
    }
}

/// true/false/yes/no/y/n/1/0 (any case), the booleans spreadsheets export.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = super::text::trim(text);
    const TRUE: [&str; 5] = ["true", "yes", "y", "1", "t"];
    const FALSE: [&str; 5] = ["false", "no", "n", "0", "f"];
    if TRUE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(false)
    } else {
        None
    }
}
