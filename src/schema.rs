//! What each target accepts: field names, types, lengths and which are required.
//!
//! Used twice: by `check` (unknown fields) and by the mapper (row validation), so a row
//! that the CRM would refuse for a documented reason fails locally, before any request.
//! A leaf: it knows targets by name and depends on nothing else of the crate.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Free text, at most `max_len` characters.
    Text {
        max_len: Option<usize>,
    },
    /// true/false/yes/no/y/n/1/0, sent as a JSON boolean.
    Bool,
    /// Levels joined by `separator`, each at most `level_max` characters (Repsly Territory).
    Path {
        /// An ASCII character, so levels are found a byte at a time.
        separator: u8,
        level_max: usize,
    },
    /// A list (from `split:`), each item at most `item_max` characters.
    List {
        item_max: Option<usize>,
    },
    Email {
        max_len: Option<usize>,
    },
    Uuid,
    /// ISO-8601 date.
    Date,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

const fn text(name: &'static str, max: usize) -> FieldDef {
    FieldDef { name, ty: FieldType::Text { max_len: Some(max) }, required: false }
}

const fn free(name: &'static str) -> FieldDef {
    FieldDef { name, ty: FieldType::Text { max_len: None }, required: false }
}

const fn required(mut def: FieldDef) -> FieldDef {
    def.required = true;
    def
}

/// Whether a field the schema does not list is refused or let through with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    Deny,
    Warn,
}

#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub fields: &'static [FieldDef],
    /// `CustomFields.` for Repsly: any name after it is a custom field.
    pub custom_prefix: Option<&'static str>,
    pub unknown: UnknownFields,
    /// `check` refuses a pipeline that does not map every required field.
    pub require_mapped: bool,
    /// Longest text a custom field's value may have.
    pub custom_max_len: Option<usize>,
}

pub enum Lookup<'a> {
    Known(&'a FieldDef),
    Custom,
    Unknown,
}

impl Schema {
    pub fn lookup(&self, name: &str) -> Lookup<'static> {
        if let Some(def) = self.fields.iter().find(|d| d.name == name) {
            return Lookup::Known(def);
        }
        match self.custom_prefix {
            Some(p) if name.len() > p.len() && name.starts_with(p) => Lookup::Custom,
            _ => Lookup::Unknown,
        }
    }

    pub fn field_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.fields.iter().map(|d| d.name).collect();
        if let Some(p) = self.custom_prefix {
            names.push(if p == "CustomFields." { "CustomFields.<name>" } else { p });
        }
        names
    }
}

/// Repsly client fields, from `api/repsly.md`.
pub const REPSLY_CLIENTS: Schema = Schema {
    fields: &[
        required(text("Code", 50)),
        required(text("Name", 255)),
        FieldDef { name: "Active", ty: FieldType::Bool, required: false },
        free("Tag"),
        FieldDef {
            name: "Territory",
            ty: FieldType::Path { separator: b'>', level_max: 80 },
            required: false,
        },
        text("RepresentativeCode", 20),
        text("RepresentativeName", 80),
        text("StreetAddress", 255),
        text("ZIP", 20),
        text("ZIPExt", 20),
        text("City", 255),
        text("State", 255),
        text("Country", 255),
        FieldDef { name: "Email", ty: FieldType::Email { max_len: Some(128) }, required: false },
        text("Phone", 128),
        text("Mobile", 128),
        text("Website", 255),
        text("ContactName", 255),
        text("ContactTitle", 50),
        text("Note", 255),
        free("Status"),
        FieldDef { name: "PriceLists", ty: FieldType::List { item_max: None }, required: false },
        free("AccountCode"),
    ],
    custom_prefix: Some("CustomFields."),
    unknown: UnknownFields::Deny,
    require_mapped: true,
    custom_max_len: None,
};

/// Plannr client import fields documented in `api/plannr.md`; the list is incomplete, so
/// other names pass with a warning. Only structural checks run locally (UUIDs, booleans):
/// which emails, dates and names Plannr accepts is Plannr's to say, and its refusals come
/// back as `remote` failures on the right lines.
pub const PLANNR_CLIENTS: Schema = Schema {
    fields: &[
        FieldDef { name: "uuid", ty: FieldType::Uuid, required: false },
        free("type"),
        free("first_name"),
        free("last_name"),
        free("entity_name"),
        free("email"),
        FieldDef { name: "status_uuid", ty: FieldType::Uuid, required: false },
        free("status_name"),
        FieldDef { name: "assigned_adviser_uuid", ty: FieldType::Uuid, required: false },
        FieldDef { name: "administrator_uuid", ty: FieldType::Uuid, required: false },
        FieldDef { name: "send_welcome_email", ty: FieldType::Bool, required: false },
        free("title"),
        free("middle_name"),
        free("phone"),
        free("date_of_birth"),
        free("gender"),
        free("ni_number"),
        free("nickname"),
        free("marital_status"),
        FieldDef { name: "is_prospect", ty: FieldType::Bool, required: false },
    ],
    custom_prefix: None,
    unknown: UnknownFields::Warn,
    require_mapped: false,
    custom_max_len: None,
};

/// Any other Plannr import type: no documented list, every field passes with a warning.
pub const PLANNR_OTHER_IMPORT: Schema = Schema {
    fields: &[],
    custom_prefix: None,
    unknown: UnknownFields::Warn,
    require_mapped: false,
    custom_max_len: None,
};

/// Plannr `POST /api/v2/contact-details`.
pub const PLANNR_CONTACT_DETAILS: Schema = Schema {
    fields: &[
        FieldDef { name: "type", ty: FieldType::Text { max_len: None }, required: true },
        required(text("name", 255)),
        required(free("value")),
        FieldDef { name: "is_primary", ty: FieldType::Bool, required: false },
        FieldDef { name: "account_uuids", ty: FieldType::List { item_max: None }, required: true },
        FieldDef {
            name: "primary_account_uuids",
            ty: FieldType::List { item_max: None },
            required: false,
        },
    ],
    custom_prefix: None,
    unknown: UnknownFields::Deny,
    require_mapped: true,
    custom_max_len: None,
};

/// The schema of a target by its name (`repsly.clients`, `plannr.import.clients`, ...).
pub fn schema_for(target: &str) -> Schema {
    match target {
        "repsly.clients" => REPSLY_CLIENTS,
        "plannr.contact_details" => PLANNR_CONTACT_DETAILS,
        "plannr.import.clients" => PLANNR_CLIENTS,
        _ => PLANNR_OTHER_IMPORT,
    }
}
