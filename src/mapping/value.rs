//! The value a target field holds between the mapper and the target encoder.

/// Text, or a list once `split:` has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
}

impl Value {
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Text(t) => t.trim().is_empty(),
            Value::List(l) => l.iter().all(|s| s.trim().is_empty()),
        }
    }

    /// Each text item: the text itself, or every list element.
    pub fn items(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Value::Text(t) => Box::new(std::iter::once(t.as_str())),
            Value::List(l) => Box::new(l.iter().map(String::as_str)),
        }
    }

    /// For messages: the value as the user would recognise it.
    pub fn display(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::List(l) => l.join("|"),
        }
    }
}

/// true/false/yes/no/y/n/1/0 (any case), the booleans spreadsheets export.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "t" => Some(true),
        "false" | "no" | "n" | "0" | "f" => Some(false),
        _ => None,
    }
}
