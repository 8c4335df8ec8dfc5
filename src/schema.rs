//! What each target accepts: field names, types, lengths and which are required.
//!
//! Used twice: by `check` (unknown fields) and by the mapper (row validation), so a row
//! that the CRM would refuse for a documented reason fails locally, before any request.
//! A leaf: it knows targets by name and depends on nothing else of the crate.
//!
//! Every target but Plannr's import types is a row of [`TARGETS`]: its name, its schema and
//! its batch size. Adding one is a row here, its adapter (`targets/`) and the sandbox.

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
    /// Several values (from `split:`, or a cell holding them joined as `form` joins them),
    /// each an `item`, sent as `form` says.
    List {
        item: Item,
        form: Form,
    },
    Email {
        max_len: Option<usize>,
    },
    Uuid,
    /// A date: ISO-8601 as the transforms write it, sent in the schema's
    /// [`Schema::date_format`] (a cell already in that form is taken as it is).
    Date,
    /// One of a documented list of values, exactly as written there.
    OneOf(&'static [&'static str]),
    /// A decimal number with at most `precision` digits, `scale` of them after the point
    /// (Repsly's Decimal(18,4)); sent as a JSON number.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// Any decimal number (a double, as Repsly's price-list `Price`); sent as a JSON number.
    Number,
    /// A whole number from `min` to `max`; sent as a JSON number.
    Integer {
        min: i64,
        max: i64,
    },
    /// A time of day, `HH:MM` (24-hour).
    Time,
    /// An absolute `http://` or `https://` address (an image the CRM downloads).
    Url,
}

/// What one value of a [`FieldType::List`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Text {
        max_len: Option<usize>,
    },
    /// One of the documented values, any case in the cell, sent as the docs write it.
    OneOf(&'static [&'static str]),
    Email,
    /// Levels joined by `separator`, each at most `level_max` characters.
    Path {
        separator: u8,
        level_max: usize,
    },
    /// `Type: description` (a Repsly schedule's task), the type one of these.
    Task(&'static [&'static str]),
}

/// How a [`FieldType::List`] is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A JSON array of strings.
    Array,
    /// A JSON array of objects with one member each: `[{"Name": "A"}, ...]` (Repsly
    /// `PriceLists`).
    Objects(&'static str),
    /// One string, the values joined by this ASCII character (Repsly `RepeatDays`:
    /// `Sunday|Monday`); a cell written that way is read as the list it is.
    Joined(u8),
    /// Repsly products' `Packaging`: `{"Codes": [{"Value": "A"}, ...], "IsSet": true}` (the
    /// codes replace the product's packages).
    Packaging,
    /// Repsly schedules' `Tasks`: `[{"TaskType": "Photo", "TaskDescription": "..."}, ...]`.
    Tasks,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

const fn field(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef { name, ty, required: false }
}

const fn text(name: &'static str, max: usize) -> FieldDef {
    field(name, FieldType::Text { max_len: Some(max) })
}

const fn free(name: &'static str) -> FieldDef {
    field(name, FieldType::Text { max_len: None })
}

const fn boolean(name: &'static str) -> FieldDef {
    field(name, FieldType::Bool)
}

const fn date(name: &'static str) -> FieldDef {
    field(name, FieldType::Date)
}

const fn uuid(name: &'static str) -> FieldDef {
    field(name, FieldType::Uuid)
}

const fn number(name: &'static str) -> FieldDef {
    field(name, FieldType::Number)
}

const fn list(name: &'static str, item: Item, form: Form) -> FieldDef {
    field(name, FieldType::List { item, form })
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

/// ISO-8601, the form dates take between the transforms and the target.
pub const ISO_DATE: &str = "%Y-%m-%d";
/// DD/MM/YYYY, the form Plannr's import files carry dates in (SPEC §3).
pub const UK_DATE: &str = "%d/%m/%Y";

#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub fields: &'static [FieldDef],
    /// `CustomFields.` for Repsly clients: any name after it is a custom field.
    pub custom_prefix: Option<&'static str>,
    pub unknown: UnknownFields,
    /// `check` refuses a pipeline that does not map every required field.
    pub require_mapped: bool,
    /// Longest text a custom field's value may have.
    pub custom_max_len: Option<usize>,
    /// How the target is sent dates (strftime): what `date:` transforms and date fields write.
    pub date_format: &'static str,
    /// Fields whose value may be looked up (`lookup = { by = "email" }`): Plannr `client_uuid`.
    pub lookups: &'static [&'static str],
    /// What `check` says about every pipeline of this target (a Repsly user import changes
    /// what the account is billed for).
    pub notice: Option<&'static str>,
}

impl Schema {
    /// A schema of `fields` that refuses fields it does not list and requires its required
    /// ones mapped; dates ISO-8601, no custom fields, no lookups.
    const fn of(fields: &'static [FieldDef]) -> Self {
        Self {
            fields,
            custom_prefix: None,
            unknown: UnknownFields::Deny,
            require_mapped: true,
            custom_max_len: None,
            date_format: ISO_DATE,
            lookups: &[],
            notice: None,
        }
    }

    const fn with_custom(mut self, prefix: &'static str) -> Self {
        self.custom_prefix = Some(prefix);
        self
    }
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
            names.push(custom_placeholder(p));
        }
        names
    }

    /// Each field as `check` lists it: its name, `(required)` when it is, and its type.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .fields
            .iter()
            .map(|d| {
                let required = if d.required { ", required" } else { "" };
                format!("{} ({}{required})", d.name, describe_type(d.ty, self.date_format))
            })
            .collect();
        if let Some(p) = self.custom_prefix {
            out.push(format!("{} (text)", custom_placeholder(p)));
        }
        out
    }
}

/// `CustomFields.<name>` for the prefix `CustomFields.`.
fn custom_placeholder(prefix: &'static str) -> &'static str {
    match prefix {
        "CustomFields." => "CustomFields.<name>",
        "CustomAttributes." => "CustomAttributes.<title>",
        "Attributes." => "Attributes.<title>",
        other => other,
    }
}

/// A type in a few words, for `check`.
fn describe_type(ty: FieldType, date_format: &str) -> String {
    match ty {
        FieldType::Text { max_len: Some(n) } => format!("text, at most {n}"),
        FieldType::Text { max_len: None } => "text".into(),
        FieldType::Bool => "yes/no".into(),
        FieldType::Path { separator, level_max } => {
            format!("levels joined by `{}`, each at most {level_max}", char::from(separator))
        }
        FieldType::List { form: Form::Joined(sep), .. } => {
            format!("list, sent joined by `{}`", char::from(sep))
        }
        FieldType::List { .. } => "list".into(),
        FieldType::Email { .. } => "email".into(),
        FieldType::Uuid => "uuid".into(),
        FieldType::Date => format!("date, sent {}", words(date_format)),
        FieldType::OneOf(values) => format!("one of {}", values.join(", ")),
        FieldType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        FieldType::Number => "number".into(),
        FieldType::Integer { .. } => "whole number".into(),
        FieldType::Time => "time hh:mm".into(),
        FieldType::Url => "http(s) address".into(),
    }
}

fn words(format: &str) -> &'static str {
    match format {
        UK_DATE => "dd/mm/yyyy",
        _ => "yyyy-mm-dd",
    }
}

/// A target other than Plannr's import types.
#[derive(Debug, Clone, Copy)]
pub struct TargetInfo {
    pub name: &'static str,
    pub schema: Schema,
    /// Rows per batch unless the pipeline's `batch.max_rows` says otherwise.
    pub batch_rows: usize,
}

/// Week days as Repsly writes them.
const DAYS: &[&str] =
    &["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Repsly user roles.
const ROLES: &[&str] = &["AccountOwner", "Admin", "Representative"];

/// Repsly's schedule task types.
const TASK_TYPES: &[&str] = &["Note", "Photo", "Form", "Audit", "Sales document"];

/// Repsly's admin permissions (the user import's `Permissions`).
const PERMISSIONS: &[&str] = &[
    "Clients",
    "Products",
    "Projects",
    "DocumentTypes",
    "ImportPricelists",
    "Forms",
    "Schedule",
    "Statuses",
    "Audits",
    "Tags",
    "CustomAttributes",
    "CustomUserAttributes",
    "ApplicationSettings",
    "DeletingActivities",
    "ImportPlaces",
    "ImportProducts",
    "ImportSchedules",
    "ImportPricelistsForPlaces",
    "ImportPackageTypes",
    "Exports",
    "PublicLink",
    "Representatives",
    "RepresentativesAddress",
    "BackofficeUsers",
    "Territories",
    "CompanyInfo",
    "GuestUsers",
    "AdvancedReporting",
    "Files",
];

const ANY_TEXT: Item = Item::Text { max_len: None };

/// Repsly client fields, from `api/repsly.md`.
pub const REPSLY_CLIENTS: Schema = Schema::of(&[
    required(text("Code", 50)),
    required(text("Name", 255)),
    boolean("Active"),
    free("Tag"),
    field("Territory", FieldType::Path { separator: b'>', level_max: 80 }),
    text("RepresentativeCode", 20),
    text("RepresentativeName", 80),
    text("StreetAddress", 255),
    text("ZIP", 20),
    text("ZIPExt", 20),
    text("City", 255),
    text("State", 255),
    text("Country", 255),
    field("Email", FieldType::Email { max_len: Some(128) }),
    text("Phone", 128),
    text("Mobile", 128),
    text("Website", 255),
    text("ContactName", 255),
    text("ContactTitle", 50),
    text("Note", 255),
    free("Status"),
    list("PriceLists", ANY_TEXT, Form::Objects("Name")),
    free("AccountCode"),
])
.with_custom("CustomFields.");

/// Repsly products (`import/productList`): Code the key; packages and custom attributes
/// must exist in the account already (Repsly creates neither on import).
pub const REPSLY_PRODUCTS: Schema = Schema::of(&[
    required(text("Code", 20)),
    required(text("Name", 80)),
    text("ProductGroupCode", 20),
    text("ProductGroupName", 80),
    boolean("Active"),
    free("Tag"),
    required(field("UnitPrice", FieldType::Decimal { precision: 18, scale: 4 })),
    text("EAN", 20),
    list("AdditionalBarcodes", ANY_TEXT, Form::Joined(b',')),
    text("Note", 1000),
    field("ImageUrl", FieldType::Url),
    free("MasterProduct"),
    list("Packaging", ANY_TEXT, Form::Packaging),
])
.with_custom("CustomAttributes.");

/// Repsly price-list items (`import/pricelistItemList`): PricelistName + ProductCode the
/// key; the price list must exist already.
pub const REPSLY_PRICELIST_ITEMS: Schema = Schema::of(&[
    required(free("PricelistName")),
    required(free("ProductCode")),
    required(number("Price")),
    boolean("Active"),
    date("DateAvailableFrom"),
    date("DateAvailableTo"),
    free("ClientID"),
    free("ManufactureID"),
    field("MinQuantity", FieldType::Integer { min: 0, max: i32::MAX as i64 }),
    field("MaxQuantity", FieldType::Integer { min: 0, max: i32::MAX as i64 }),
]);

/// Repsly place accounts (`import/accountList`): Code the key.
pub const REPSLY_ACCOUNTS: Schema = Schema::of(&[
    required(free("Code")),
    required(free("Name")),
    boolean("Active"),
    field("LogoUrl", FieldType::Url),
]);

/// Repsly visit schedules (`import/schedule`, one per request): ScheduleCode the key (Repsly
/// makes one up when it is empty).
pub const REPSLY_SCHEDULES: Schema = Schema::of(&[
    text("ScheduleCode", 50),
    required(text("ClientCode", 50)),
    required(text("UserID", 20)),
    required(date("ScheduledDate")),
    field("RepeatEveryWeeks", FieldType::Integer { min: 0, max: 520 }),
    boolean("DueDate"),
    date("RepeatEndDate"),
    list("RepeatDays", Item::OneOf(DAYS), Form::Joined(b'|')),
    field("ScheduledTime", FieldType::Time),
    field("ScheduledDuration", FieldType::Integer { min: 1, max: 24 * 60 }),
    free("VisitNote"),
    list("AlertUsersIfMissed", Item::Email, Form::Joined(b'|')),
    list("AlertUsersIfLate", Item::Email, Form::Joined(b'|')),
    list("AlertUsersIfDone", Item::Email, Form::Joined(b'|')),
    free("ExternalID"),
    boolean("Active"),
    list("Tasks", Item::Task(TASK_TYPES), Form::Tasks),
]);

/// Repsly users (`import/userList`, answered inline with the account's seats).
pub const REPSLY_USERS: Schema = Schema {
    notice: Some("a user import can change what the Repsly account is billed for: Repsly bills by active users, and each summary's `seats` shows the active users before and after the import"),
    ..Schema::of(&[
        required(text("Code", 20)),
        text("Name", 80),
        required(field("Email", FieldType::Email { max_len: Some(100) })),
        boolean("Active"),
        list("Role", Item::OneOf(ROLES), Form::Joined(b'|')),
        text("Note", 255),
        text("Phone", 128),
        list("Territories", Item::Path { separator: b'/', level_max: 80 }, Form::Array),
        boolean("SendEmailEnabled"),
        text("Address1", 256),
        text("Address2", 256),
        text("City", 256),
        text("State", 256),
        text("ZipCode", 20),
        text("ZipCodeExt", 20),
        text("Country", 256),
        text("CountryCode", 20),
        list("Permissions", Item::OneOf(PERMISSIONS), Form::Array),
        list("Teams", ANY_TEXT, Form::Array),
        boolean("ShowActivitiesWithoutTeam"),
    ])
    .with_custom("Attributes.")
};

/// Plannr `POST /api/v2/contact-details`.
pub const PLANNR_CONTACT_DETAILS: Schema = Schema::of(&[
    required(free("type")),
    required(text("name", 255)),
    required(free("value")),
    boolean("is_primary"),
    required(list("account_uuids", ANY_TEXT, Form::Array)),
    list("primary_account_uuids", ANY_TEXT, Form::Array),
]);

/// Every target but Plannr's import types.
pub const TARGETS: &[TargetInfo] = &[
    TargetInfo { name: "repsly.clients", schema: REPSLY_CLIENTS, batch_rows: 50 },
    TargetInfo { name: "repsly.products", schema: REPSLY_PRODUCTS, batch_rows: 50 },
    TargetInfo { name: "repsly.pricelist_items", schema: REPSLY_PRICELIST_ITEMS, batch_rows: 50 },
    TargetInfo { name: "repsly.accounts", schema: REPSLY_ACCOUNTS, batch_rows: 50 },
    TargetInfo { name: "repsly.schedules", schema: REPSLY_SCHEDULES, batch_rows: 1 },
    TargetInfo { name: "repsly.users", schema: REPSLY_USERS, batch_rows: 50 },
    TargetInfo { name: "plannr.contact_details", schema: PLANNR_CONTACT_DETAILS, batch_rows: 50 },
];

/// The row of [`TARGETS`] named `name`.
pub fn target(name: &str) -> Option<&'static TargetInfo> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Rows per batch for a target unless the pipeline says otherwise (Plannr imports: 500).
pub fn batch_rows(name: &str) -> usize {
    target(name).map_or(500, |t| t.batch_rows)
}

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

/// Every target name a pipeline may give, Plannr's import types spelled out.
pub fn target_names() -> Vec<String> {
    let imports = PLANNR_IMPORT_TYPES.iter().map(|t| format!("plannr.import.{t}"));
    TARGETS.iter().map(|t| t.name.to_string()).chain(imports).collect()
}

/// Whether `name` is a target this program can send to.
pub fn is_target(name: &str) -> bool {
    target(name).is_some()
        || name.strip_prefix("plannr.import.").is_some_and(|t| PLANNR_IMPORT_TYPES.contains(&t))
}

/// Whether `name` is the table a dotted custom-field key makes (`CustomFields.Region = ...`
/// arrives as a table `CustomFields`) for some target.
pub fn is_custom_table(name: &str) -> bool {
    TARGETS.iter().filter_map(|t| t.schema.custom_prefix).any(|p| p.strip_suffix('.') == Some(name))
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
            uuid("status_uuid"),
            free("status_name"),
            uuid("assigned_adviser_uuid"),
            uuid("administrator_uuid"),
            FieldDef {
                name: "send_welcome_email",
                ty: FieldType::Bool,
                required: $welcome_required,
            },
            free("title"),
            free("middle_name"),
            free("phone"),
            date("date_of_birth"),
            field("gender", FieldType::OneOf(GENDERS)),
            free("ni_number"),
            free("nickname"),
            free("marital_status"),
            boolean("is_prospect"),
        ]
    };
}

/// A Plannr plan import's documented fields (the Plan Import Schema): `client_uuid` always
/// required (the client, joint client or entity the plan belongs to), `uuid` to update;
/// dates as its examples write them (`28/06/1999`).
macro_rules! plannr_plans {
    ($uuid_required:expr) => {
        &[
            FieldDef { name: "uuid", ty: FieldType::Uuid, required: $uuid_required },
            required(uuid("client_uuid")),
            free("name"),
            field("value", FieldType::Integer { min: i64::MIN, max: i64::MAX }),
            free("type"),
            free("plan_type"),
            free("provider"),
            free("status"),
            date("opened_at"),
            date("inactive_at"),
            free("inactive_reason"),
        ]
    };
}

/// A Plannr premium-history import's documented fields (its support article): the value
/// lists of `transfer_type` and `payment_method`, `date_advice_given` as DD/MM/YYYY.
macro_rules! plannr_premiums {
    ($uuid_required:expr) => {
        &[
            FieldDef { name: "uuid", ty: FieldType::Uuid, required: $uuid_required },
            uuid("plan_uuid"),
            field("transfer_type", FieldType::OneOf(&["switch", "transfer"])),
            date("date_advice_given"),
            number("amount"),
            number("percentage"),
            free("frequency"),
            free("source"),
            field(
                "payment_method",
                FieldType::OneOf(&[
                    "salary sacrifice",
                    "salary deduction",
                    "direct debit",
                    "standing order",
                    "bank transfer",
                ]),
            ),
            date("start_date"),
            date("end_date"),
            number("pensionable_salary"),
            free("details"),
            uuid("transferred_from_plan_uuid"),
            free("transferred_from_plan_type"),
            free("transferred_from_plan_sub_type"),
        ]
    };
}

/// Plannr import fields as documented. The lists are incomplete, so other names pass with a
/// warning. Only structural checks run locally (required fields, UUIDs, booleans, numbers,
/// dates, documented value lists): which emails and names Plannr accepts is Plannr's to say,
/// and its refusals come back as `remote` failures on the right lines. Dates go as DD/MM/YYYY.
const fn plannr_import(fields: &'static [FieldDef]) -> Schema {
    Schema { unknown: UnknownFields::Warn, date_format: UK_DATE, ..Schema::of(fields) }
}

/// `plannr.import.clients` creating clients (`store`, `validate`).
pub const PLANNR_CLIENTS: Schema = plannr_import(plannr_clients!(false, true));

/// `plannr.import.clients` in `update` mode.
pub const PLANNR_CLIENTS_UPDATE: Schema = plannr_import(plannr_clients!(true, false));

/// `plannr.import.plans` creating plans; `client_uuid` may be looked up by email.
pub const PLANNR_PLANS: Schema =
    Schema { lookups: &["client_uuid"], ..plannr_import(plannr_plans!(false)) };

/// `plannr.import.plans` in `update` mode.
pub const PLANNR_PLANS_UPDATE: Schema =
    Schema { lookups: &["client_uuid"], ..plannr_import(plannr_plans!(true)) };

/// `plannr.import.premiums` creating premium history.
pub const PLANNR_PREMIUMS: Schema = plannr_import(plannr_premiums!(false));

/// `plannr.import.premiums` in `update` mode.
pub const PLANNR_PREMIUMS_UPDATE: Schema = plannr_import(plannr_premiums!(true));

/// `plannr.import.charges` (the Charges Import article): a charge schedule against a plan or
/// a client, `adviser_uuid` and `payment_origin` required.
pub const PLANNR_CHARGES: Schema = Schema {
    lookups: &["client_uuid"],
    ..plannr_import(&[
        uuid("plan_uuid"),
        uuid("client_uuid"),
        required(uuid("adviser_uuid")),
        required(field("payment_origin", FieldType::OneOf(&["client", "provider", "unknown"]))),
        free("type"),
    ])
};

/// Any other Plannr import type: no documented list, every field passes with a warning.
pub const PLANNR_OTHER_IMPORT: Schema = Schema { require_mapped: false, ..plannr_import(&[]) };

/// The schema of a target by its name (`repsly.clients`, `plannr.import.clients`, ...) when
/// its rows create records.
pub fn schema_for(target: &str) -> Schema {
    schema_of(target, Writes::Create)
}

/// The schema of a target whose rows are written as `writes` says.
pub fn schema_of(target_name: &str, writes: Writes) -> Schema {
    if let Some(t) = target(target_name) {
        return t.schema;
    }
    match (target_name, writes) {
        ("plannr.import.clients", Writes::Create) => PLANNR_CLIENTS,
        ("plannr.import.clients", Writes::Update) => PLANNR_CLIENTS_UPDATE,
        ("plannr.import.plans", Writes::Create) => PLANNR_PLANS,
        ("plannr.import.plans", Writes::Update) => PLANNR_PLANS_UPDATE,
        ("plannr.import.premiums", Writes::Create) => PLANNR_PREMIUMS,
        ("plannr.import.premiums", Writes::Update) => PLANNR_PREMIUMS_UPDATE,
        ("plannr.import.charges", _) => PLANNR_CHARGES,
        _ => PLANNR_OTHER_IMPORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required_of(s: Schema) -> Vec<&'static str> {
        s.fields.iter().filter(|d| d.required).map(|d| d.name).collect()
    }

    #[test]
    fn plannr_clients_require_the_welcome_email_to_create_and_the_uuid_to_update() {
        assert_eq!(
            required_of(schema_of("plannr.import.clients", Writes::Create)),
            ["send_welcome_email"]
        );
        assert_eq!(required_of(schema_of("plannr.import.clients", Writes::Update)), ["uuid"]);
        assert_eq!(required_of(schema_of("plannr.import.plans", Writes::Create)), ["client_uuid"]);
        assert_eq!(
            required_of(schema_of("plannr.import.plans", Writes::Update)),
            ["uuid", "client_uuid"]
        );
        assert_eq!(required_of(schema_of("plannr.import.premiums", Writes::Update)), ["uuid"]);
        for s in [PLANNR_CLIENTS, PLANNR_PLANS, PLANNR_PREMIUMS, REPSLY_CLIENTS] {
            assert!(s.require_mapped, "a documented required field must be mapped");
        }
    }

    #[test]
    fn each_repsly_target_requires_what_its_docs_mark_required() {
        assert_eq!(required_of(REPSLY_PRODUCTS), ["Code", "Name", "UnitPrice"]);
        assert_eq!(required_of(REPSLY_PRICELIST_ITEMS), ["PricelistName", "ProductCode", "Price"]);
        assert_eq!(required_of(REPSLY_ACCOUNTS), ["Code", "Name"]);
        assert_eq!(required_of(REPSLY_SCHEDULES), ["ClientCode", "UserID", "ScheduledDate"]);
        assert_eq!(required_of(REPSLY_USERS), ["Code", "Email"]);
        assert!(REPSLY_USERS.notice.is_some_and(|n| n.contains("billed")));
    }

    #[test]
    fn targets_are_known_by_name() {
        assert!(is_target("plannr.import.clients") && is_target("repsly.clients"));
        assert!(is_target("repsly.pricelist_items") && is_target("repsly.users"));
        assert!(!is_target("plannr.import.client") && !is_target("plannr.import."));
        assert!(target_names().contains(&"plannr.import.provider_statement".to_string()));
        assert!(is_custom_table("CustomAttributes") && !is_custom_table("Code"));
        assert_eq!((batch_rows("repsly.schedules"), batch_rows("plannr.import.plans")), (1, 500));
    }

    #[test]
    fn plannr_imports_send_dates_as_their_docs_write_them() {
        for s in [PLANNR_CLIENTS, PLANNR_PLANS, PLANNR_PREMIUMS, PLANNR_OTHER_IMPORT] {
            assert_eq!(s.date_format, UK_DATE);
        }
        assert_eq!(REPSLY_PRICELIST_ITEMS.date_format, ISO_DATE);
    }
}
