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
    /// One of a documented list of values, exactly as written there.
    OneOf(&'static [&'static str]),
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

/// Plannr's import types (`api/plannr.md`: the documented list and the newer docs' additions).
pub const PLANNR_IMPORT_TYPES: &[&str] = &[
    "business_staff_members",
    "charges",
    "circles",
    "clients",
    "expenses",
    "group_scheme_members",
    "incomes",
    "notes",
    "plans",
    "premiums",
    "provider_statement",
    "seccl_valuations",
    "tasks",
    "valuations",
];

/// The targets other than Plannr imports.
const OTHER_TARGETS: &[&str] = &["repsly.clients", "plannr.contact_details"];

/// Every target name a pipeline may give, Plannr's import types spelled out.
pub fn target_names() -> Vec<String> {
    let imports = PLANNR_IMPORT_TYPES.iter().map(|t| format!("plannr.import.{t}"));
    OTHER_TARGETS.iter().map(|t| t.to_string()).chain(imports).collect()
}

/// Whether `name` is a target this program can send to.
pub fn is_target(name: &str) -> bool {
    OTHER_TARGETS.contains(&name)
        || name.strip_prefix("plannr.import.").is_some_and(|t| PLANNR_IMPORT_TYPES.contains(&t))
}

/// How a pipeline's rows are written: records created (Plannr `store` and `validate`, every
/// other target), or existing records updated (Plannr `update`, which names them by `uuid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Create,
    Update,
}

/// `gender` in Plannr's account vocabulary.
const GENDERS: &[&str] =
    &["male", "female", "non-binary", "transgender", "intersex", "other", "unknown"];

/// A Plannr client import's documented fields (`api/plannr.md`, Client Import Schema); which
/// are required depends on the mode: `send_welcome_email` to create (the docs' own example
/// error is "The send welcome email field is required."), `uuid` to update.
macro_rules! plannr_clients {
    ($uuid_required:expr, $welcome_required:expr) => {
        &[
            FieldDef { name: "uuid", ty: FieldType::Uuid, required: $uuid_required },
            free("type"),
            free("first_name"),
            free("last_name"),
            free("entity_name"),
            free("email"),
            FieldDef { name: "status_uuid", ty: FieldType::Uuid, required: false },
            free("status_name"),
            FieldDef { name: "assigned_adviser_uuid", ty: FieldType::Uuid, required: false },
            FieldDef { name: "administrator_uuid", ty: FieldType::Uuid, required: false },
            FieldDef {
                name: "send_welcome_email",
                ty: FieldType::Bool,
                required: $welcome_required,
            },
            free("title"),
            free("middle_name"),
            free("phone"),
            free("date_of_birth"),
            FieldDef { name: "gender", ty: FieldType::OneOf(GENDERS), required: false },
            free("ni_number"),
            free("nickname"),
            free("marital_status"),
            FieldDef { name: "is_prospect", ty: FieldType::Bool, required: false },
        ]
    };
}

/// A Plannr plan import's documented fields: `client_uuid` always required (the client, joint
/// client or entity the plan belongs to), `uuid` to update.
macro_rules! plannr_plans {
    ($uuid_required:expr) => {
        &[
            FieldDef { name: "uuid", ty: FieldType::Uuid, required: $uuid_required },
            FieldDef { name: "client_uuid", ty: FieldType::Uuid, required: true },
            free("name"),
            free("value"),
            free("type"),
            free("plan_type"),
            free("provider"),
            free("status"),
            free("opened_at"),
            free("inactive_at"),
        ]
    };
}

/// Plannr import fields documented in `api/plannr.md`. The lists are incomplete, so other
/// names pass with a warning. Only structural checks run locally (required fields, UUIDs,
/// booleans, documented value lists): which emails, dates and names Plannr accepts is
/// Plannr's to say, and its refusals come back as `remote` failures on the right lines.
const fn plannr_import(fields: &'static [FieldDef]) -> Schema {
    Schema {
        fields,
        custom_prefix: None,
        unknown: UnknownFields::Warn,
        require_mapped: true,
        custom_max_len: None,
    }
}

/// `plannr.import.clients` creating clients (`store`, `validate`).
pub const PLANNR_CLIENTS: Schema = plannr_import(plannr_clients!(false, true));

/// `plannr.import.clients` in `update` mode.
pub const PLANNR_CLIENTS_UPDATE: Schema = plannr_import(plannr_clients!(true, false));

/// `plannr.import.plans` creating plans.
pub const PLANNR_PLANS: Schema = plannr_import(plannr_plans!(false));

/// `plannr.import.plans` in `update` mode.
pub const PLANNR_PLANS_UPDATE: Schema = plannr_import(plannr_plans!(true));

/// `plannr.import.premiums`: the premium history's documented fields and value lists.
pub const PLANNR_PREMIUMS: Schema = plannr_import(&[
    FieldDef {
        name: "transfer_type",
        ty: FieldType::OneOf(&["switch", "transfer"]),
        required: false,
    },
    FieldDef {
        name: "payment_method",
        ty: FieldType::OneOf(&[
            "salary sacrifice",
            "salary deduction",
            "direct debit",
            "standing order",
            "bank transfer",
        ]),
        required: false,
    },
    free("date_advice_given"),
]);

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

/// The schema of a target by its name (`repsly.clients`, `plannr.import.clients`, ...) when
/// its rows create records.
pub fn schema_for(target: &str) -> Schema {
    schema_of(target, Writes::Create)
}

/// The schema of a target whose rows are written as `writes` says.
pub fn schema_of(target: &str, writes: Writes) -> Schema {
    match (target, writes) {
        ("repsly.clients", _) => REPSLY_CLIENTS,
        ("plannr.contact_details", _) => PLANNR_CONTACT_DETAILS,
        ("plannr.import.clients", Writes::Create) => PLANNR_CLIENTS,
        ("plannr.import.clients", Writes::Update) => PLANNR_CLIENTS_UPDATE,
        ("plannr.import.plans", Writes::Create) => PLANNR_PLANS,
        ("plannr.import.plans", Writes::Update) => PLANNR_PLANS_UPDATE,
        ("plannr.import.premiums", _) => PLANNR_PREMIUMS,
        _ => PLANNR_OTHER_IMPORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plannr_clients_require_the_welcome_email_to_create_and_the_uuid_to_update() {
        let required = |s: Schema| -> Vec<&str> {
            s.fields.iter().filter(|d| d.required).map(|d| d.name).collect()
        };
        assert_eq!(
            required(schema_of("plannr.import.clients", Writes::Create)),
            ["send_welcome_email"]
        );
        assert_eq!(required(schema_of("plannr.import.clients", Writes::Update)), ["uuid"]);
        assert_eq!(required(schema_of("plannr.import.plans", Writes::Create)), ["client_uuid"]);
        assert_eq!(
            required(schema_of("plannr.import.plans", Writes::Update)),
            ["uuid", "client_uuid"]
        );
        for s in [PLANNR_CLIENTS, PLANNR_PLANS, PLANNR_PREMIUMS, REPSLY_CLIENTS] {
            assert!(s.require_mapped, "a documented required field must be mapped");
        }
    }

    #[test]
    fn targets_are_known_by_name() {
        assert!(is_target("plannr.import.clients") && is_target("repsly.clients"));
        assert!(!is_target("plannr.import.client") && !is_target("plannr.import."));
        assert!(target_names().contains(&"plannr.import.provider_statement".to_string()));
    }
}
