//! What a field's mapping says, as the config checked it: the mapper compiles these against
//! each file's header. Defined here, below the config, so the config depends on mapping and
//! not the other way round.

use super::{Transform, Validator};

/// Where a target field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// The first of these header names present in the file.
    Columns(Vec<String>),
    /// `"{First Name} {Surname}"`.
    Template(Vec<TemplatePart>),
    Constant(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Column(String),
}

/// What an empty value does: leave the field out, or send it empty to clear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyPolicy {
    Omit,
    Clear,
}

/// What a looked-up field's value is (`lookup = { by = "email" }`): the key a lookup finds
/// the record by, before the row is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupBy {
    /// A client's primary email.
    Email,
}

#[derive(Debug, Clone)]
pub struct FieldSettings {
    /// Target field name (`Code`, `CustomFields.Region`, ...).
    pub target: String,
    pub source: ValueSource,
    pub transforms: Vec<Transform>,
    pub validators: Vec<Validator>,
    pub empty: EmptyPolicy,
    /// `format`: the strftime form this field's dates are sent in, when not the target's own.
    pub date_format: Option<String>,
    /// `lookup`: the value is a key the record's id is looked up by.
    pub lookup: Option<LookupBy>,
}
