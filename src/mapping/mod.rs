//! Source row -> target field values: transforms, validators and the target's schema.

pub mod json;
mod kinds;
mod mapper;
pub mod phone;
pub mod spec;
pub mod text;
mod transform;
mod validate;
mod value;

pub use mapper::{
    Cells, CompiledField, HeaderProblems, Mapped, Mapper, PersonFields, PERSON_FIELDS,
    REPORT_COLUMNS,
};
pub use transform::{format_in_words, Transform};
pub use validate::{is_email, is_uuid, Validator};
pub use value::{parse_bool, Value};
