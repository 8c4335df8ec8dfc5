//! Each Repsly entity the sandbox imports, described by data, with its own rules, written
//! from `api/repsly.md` and Repsly's reference pages apart from the client's schema: what
//! makes a request unusable (a 400: wrong JSON types, a missing key) and what refuses one
//! record in the job's `Errors[]` (lengths, required fields, formats, things that must exist
//! in the account already).

use serde_json::{Map, Value};

use super::super::rules;
use super::super::SandboxOptions;

/// How an entity's import is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Job,
    Inline,
}

/// One importable entity.
pub struct Entity {
    /// Its name in `/_sandbox/records` (`products`).
    pub name: &'static str,
    /// The list endpoint and the member its records are wrapped in.
    pub list: Option<(&'static str, &'static str)>,
    /// The single-record endpoint.
    pub single: &'static str,
    /// The word in "<Word> import job started asynchronously under ID: n".
    pub word: &'static str,
    pub answer: Answer,
    /// The record's key; `None` when it has none (a 400, or made up: schedules).
    pub key: fn(&Map<String, Value>) -> Option<String>,
    /// JSON types: a wrong one makes the whole request unusable.
    pub shape: fn(&Map<String, Value>) -> Result<(), String>,
    /// Field rules: each problem refuses only this record.
    pub rules: fn(&Map<String, Value>, &SandboxOptions) -> Problems,
}

pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "clients",
        list: Some(("/v3/import/clientList", "Clients")),
        single: "/v3/import/client",
        word: "Client",
        answer: Answer::Job,
        key: |r| code(r, "Code"),
        shape: |r| types(r, &["Active"], &[], &["CustomFields", "PriceLists"]),
        rules: client_rules,
    },
    Entity {
        name: "products",
        list: Some(("/v3/import/productList", "Products")),
        single: "/v3/import/product",
        word: "Product",
        answer: Answer::Job,
        key: |r| code(r, "Code"),
        shape: |r| types(r, &["Active"], &["UnitPrice"], &["CustomAttributes", "Packaging"]),
        rules: product_rules,
    },
    Entity {
        name: "pricelist_items",
        list: Some(("/v3/import/pricelistItemList", "PricelistItems")),
        single: "/v3/import/pricelist",
        word: "Pricelist",
        answer: Answer::Job,
        key: |r| Some(format!("{}/{}", code(r, "PricelistName")?, code(r, "ProductCode")?)),
        shape: |r| types(r, &["Active"], &["Price", "MinQuantity", "MaxQuantity"], &[]),
        rules: pricelist_item_rules,
    },
    Entity {
        name: "accounts",
        list: Some(("/v3/import/accountList", "Accounts")),
        single: "/v3/import/account",
        word: "Account",
        answer: Answer::Job,
        key: |r| code(r, "Code"),
        shape: |r| types(r, &["Active"], &[], &[]),
        rules: account_rules,
    },
    Entity {
        name: "schedules",
        list: None,
        single: "/v3/import/schedule",
        word: "Schedule",
        answer: Answer::Job,
        key: |r| code(r, "ScheduleCode"),
        shape: |r| {
            types(r, &["Active", "DueDate"], &["RepeatEveryWeeks", "ScheduledDuration"], &["Tasks"])
        },
        rules: schedule_rules,
    },
    Entity {
        name: "users",
        list: Some(("/v3/import/userList", "Users")),
        single: "/v3/import/user",
        word: "User",
        answer: Answer::Inline,
        key: |r| code(r, "Code"),
        shape: |r| {
            types(
                r,
                &["Active", "SendEmailEnabled", "ShowActivitiesWithoutTeam"],
                &[],
                &["Territories", "Attributes", "Permissions", "Teams"],
            )
        },
        rules: user_rules,
    },
];

/// A non-empty string member.
fn code(r: &Map<String, Value>, k: &str) -> Option<String> {
    r.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(String::from)
}

/// Booleans, numbers and structures where the entity has them; every other member a string.
fn types(
    r: &Map<String, Value>,
    booleans: &[&str],
    numbers: &[&str],
    structures: &[&str],
) -> Result<(), String> {
    for (k, v) in r {
        let k = k.as_str();
        let ok = match v {
            Value::Null => true,
            Value::Bool(_) => booleans.contains(&k),
            Value::Number(_) => numbers.contains(&k),
            Value::Array(_) | Value::Object(_) => structures.contains(&k),
            Value::String(_) => {
                !booleans.contains(&k) && !numbers.contains(&k) && !structures.contains(&k)
            }
        };
        if !ok {
            let want = if booleans.contains(&k) {
                "a boolean"
            } else if numbers.contains(&k) {
                "a number"
            } else if structures.contains(&k) {
                "an array or object"
            } else {
                "a string"
            };
            return Err(format!("{k} must be {want}"));
        }
    }
    Ok(())
}

/// Each problem of a record: the field, and what is wrong with it.
pub type Problems = Vec<(String, String)>;

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    r.get(k).and_then(Value::as_str)
}

fn need(r: &Map<String, Value>, out: &mut Problems, keys: &[&str]) {
    for k in keys {
        let present = match r.get(*k) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if !present {
            out.push((k.to_string(), format!("{k} is required")));
        }
    }
}

fn lengths(r: &Map<String, Value>, out: &mut Problems, limits: &[(&str, usize)]) {
    for (k, max) in limits {
        if text(r, k).is_some_and(|s| s.chars().count() > *max) {
            out.push((k.to_string(), format!("{k} is longer than {max} characters")));
        }
    }
}

/// `2024-01-31`.
fn ymd(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn dates(r: &Map<String, Value>, out: &mut Problems, keys: &[&str]) {
    for k in keys {
        if text(r, k).is_some_and(|s| !ymd(s)) {
            out.push((k.to_string(), format!("{k} is not a date like 2024-01-31")));
        }
    }
}

fn web_address(r: &Map<String, Value>, out: &mut Problems, k: &str) {
    let bad = text(r, k).is_some_and(|s| {
        let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
        rest.is_none_or(|h| h.is_empty() || h.contains(' '))
    });
    if bad {
        out.push((k.into(), format!("{k} must be a public http(s) link")));
    }
}

/// Each `|`-separated part of `k` one of `allowed`.
fn piped(r: &Map<String, Value>, out: &mut Problems, k: &str, allowed: &[&str]) {
    if let Some(s) = text(r, k) {
        for part in s.split('|') {
            if !allowed.contains(&part) {
                out.push((k.into(), format!("{k}: `{part}` is not one of {}", allowed.join("|"))));
            }
        }
    }
}

fn client_rules(r: &Map<String, Value>, _: &SandboxOptions) -> Problems {
    let mut out = Vec::new();
    need(r, &mut out, &["Name"]);
    lengths(
        r,
        &mut out,
        &[
            ("Code", 50),
            ("Name", 255),
            ("RepresentativeCode", 20),
            ("RepresentativeName", 80),
            ("StreetAddress", 255),
            ("ZIP", 20),
            ("ZIPExt", 20),
            ("City", 255),
            ("State", 255),
            ("Country", 255),
            ("Email", 128),
            ("Phone", 128),
            ("Mobile", 128),
            ("Website", 255),
            ("ContactName", 255),
            ("ContactTitle", 50),
            ("Note", 255),
        ],
    );
    if text(r, "Territory").is_some_and(|t| t.split('>').any(|l| l.chars().count() > 80)) {
        out.push(("Territory".into(), "Territory level is longer than 80 characters".into()));
    }
    if text(r, "Email").is_some_and(|e| !e.is_empty() && !rules::email(e)) {
        out.push(("Email".into(), "Email is not valid".into()));
    }
    let named = |k: &str, member: &str| match r.get(k) {
        Some(Value::Array(items)) => {
            items.iter().all(|i| i.get(member).is_some_and(Value::is_string))
        }
        _ => true,
    };
    if !named("PriceLists", "Name") {
        out.push(("PriceLists".into(), "PriceLists entries need a Name".into()));
    }
    if !named("CustomFields", "Field") {
        out.push(("CustomFields".into(), "CustomFields entries need a Field name".into()));
    }
    out
}

fn product_rules(r: &Map<String, Value>, o: &SandboxOptions) -> Problems {
    let mut out = Vec::new();
    need(r, &mut out, &["Name", "UnitPrice"]);
    lengths(
        r,
        &mut out,
        &[
            ("Code", 20),
            ("Name", 80),
            ("ProductGroupCode", 20),
            ("ProductGroupName", 80),
            ("EAN", 20),
            ("Note", 1000),
        ],
    );
    if let Some(Value::Number(n)) = r.get("UnitPrice") {
        if let Err(e) = decimal_18_4(n) {
            out.push(("UnitPrice".into(), format!("UnitPrice {e}")));
        }
    }
    web_address(r, &mut out, "ImageUrl");
    packaging(r, o, &mut out);
    if let Some(Value::Array(attrs)) = r.get("CustomAttributes") {
        for a in attrs {
            let title = a.get("AttributeTitle").and_then(Value::as_str).unwrap_or_default();
            let value = a.get("Value").and_then(Value::as_str).unwrap_or_default();
            match o.repsly_attributes.iter().find(|(t, _)| t == title) {
                None => out.push((
                    "CustomAttributes".into(),
                    format!("custom attribute `{title}` does not exist"),
                )),
                Some((_, options)) if !options.is_empty() => {
                    for v in value.split('|').filter(|v| !options.iter().any(|o| o == v)) {
                        out.push((
                            "CustomAttributes".into(),
                            format!("`{v}` is not an option of `{title}`"),
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// A JSON number Decimal(18,4) holds: at most 4 decimals, under 10^14.
fn decimal_18_4(n: &serde_json::Number) -> Result<(), String> {
    let f = n.as_f64().unwrap_or(f64::INFINITY);
    if !f.is_finite() || f.abs() >= 1e14 {
        return Err("is out of range for Decimal(18,4)".into());
    }
    let text = n.to_string();
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    let places = mantissa.split_once('.').map_or(0, |(_, f)| f.len());
    if places > 4 || text.contains(['e', 'E']) && f.fract() != 0.0 && places > 0 {
        return Err("has more than 4 decimal places".into());
    }
    Ok(())
}

/// `{"Codes": [{"Value": code}], "IsSet": bool}`, every code an existing package.
fn packaging(r: &Map<String, Value>, o: &SandboxOptions, out: &mut Problems) {
    let Some(p) = r.get("Packaging").filter(|p| !p.is_null()) else { return };
    let codes = p.get("Codes").and_then(Value::as_array);
    let set = p.get("IsSet").map(Value::is_boolean).unwrap_or(true);
    let Some(codes) = codes.filter(|_| set) else {
        out.push(("Packaging".into(), "Packaging must be {Codes: [{Value}], IsSet}".into()));
        return;
    };
    for c in codes {
        let code = c.get("Value").and_then(Value::as_str).unwrap_or_default();
        if !o.repsly_packages.iter().any(|p| p == code) {
            out.push((
                "Packaging".into(),
                format!("package `{code}` does not exist: no new packages can be added through product import"),
            ));
        }
    }
}

fn pricelist_item_rules(r: &Map<String, Value>, o: &SandboxOptions) -> Problems {
    let mut out = Vec::new();
    need(r, &mut out, &["PricelistName", "ProductCode", "Price"]);
    if let Some(name) = text(r, "PricelistName").filter(|n| !n.is_empty()) {
        if !o.repsly_pricelists.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            out.push((
                "PricelistName".into(),
                format!("pricelist `{name}` does not exist: items are imported only into existing pricelists"),
            ));
        }
    }
    dates(r, &mut out, &["DateAvailableFrom", "DateAvailableTo"]);
    for k in ["MinQuantity", "MaxQuantity"] {
        if r.get(k).is_some_and(|v| v.is_number() && v.as_i64().is_none()) {
            out.push((k.into(), format!("{k} must be a whole number")));
        }
    }
    out
}

fn account_rules(r: &Map<String, Value>, _: &SandboxOptions) -> Problems {
    let mut out = Vec::new();
    need(r, &mut out, &["Name"]);
    web_address(r, &mut out, "LogoUrl");
    out
}

const DAYS: &[&str] =
    &["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn schedule_rules(r: &Map<String, Value>, _: &SandboxOptions) -> Problems {
    let mut out = Vec::new();
    need(r, &mut out, &["ClientCode", "UserID", "ScheduledDate"]);
    lengths(
        r,
        &mut out,
        &[("ScheduleCode", 50), ("ClientCode", 50), ("UserID", 20), ("RepeatDays", 60)],
    );
    dates(r, &mut out, &["ScheduledDate", "RepeatEndDate"]);
    piped(r, &mut out, "RepeatDays", DAYS);
    if let Some(t) = text(r, "ScheduledTime") {
        let ok = t.len() == 5 && chrono::NaiveTime::parse_from_str(t, "%H:%M").is_ok();
        if !ok {
            out.push(("ScheduledTime".into(), "ScheduledTime is not a time like 15:00".into()));
        }
    }
    if r.get("RepeatEveryWeeks").is_some_and(|v| v.as_u64().is_none() && !v.is_null()) {
        out.push(("RepeatEveryWeeks".into(), "RepeatEveryWeeks must be 0 or more weeks".into()));
    }
    if r.get("ScheduledDuration").is_some_and(|v| !v.is_null() && v.as_u64().is_none_or(|n| n == 0))
    {
        out.push(("ScheduledDuration".into(), "ScheduledDuration must be minutes".into()));
    }
    for k in ["AlertUsersIfMissed", "AlertUsersIfLate", "AlertUsersIfDone"] {
        if text(r, k).is_some_and(|s| s.split('|').any(|e| !rules::email(e))) {
            out.push((k.into(), format!("{k} must be emails separated by |")));
        }
    }
    if let Some(Value::Array(tasks)) = r.get("Tasks") {
        const TYPES: &[&str] = &["Note", "Photo", "Form", "Audit", "Sales document"];
        for t in tasks {
            let kind = t.get("TaskType").and_then(Value::as_str).unwrap_or_default();
            let description = t.get("TaskDescription").and_then(Value::as_str).unwrap_or_default();
            if !TYPES.contains(&kind) || description.trim().is_empty() {
                out.push((
                    "Tasks".into(),
                    format!("task `{kind}` needs a type of {} and a description", TYPES.join(", ")),
                ));
            }
        }
    }
    out
}

fn user_rules(r: &Map<String, Value>, _: &SandboxOptions) -> Problems {
    const ROLES: &[&str] = &["AccountOwner", "Admin", "Representative"];
    let mut out = Vec::new();
    need(r, &mut out, &["Email"]);
    lengths(
        r,
        &mut out,
        &[
            ("Code", 20),
            ("Name", 80),
            ("Email", 100),
            ("Role", 80),
            ("Note", 255),
            ("Phone", 128),
            ("Address1", 256),
            ("Address2", 256),
            ("City", 256),
            ("State", 256),
            ("ZipCode", 20),
            ("ZipCodeExt", 20),
            ("Country", 256),
            ("CountryCode", 20),
        ],
    );
    if text(r, "Email").is_some_and(|e| !e.is_empty() && !rules::email(e)) {
        out.push(("Email".into(), "Email is not valid".into()));
    }
    piped(r, &mut out, "Role", ROLES);
    let strings = |k: &str| match r.get(k) {
        Some(Value::Array(items)) => items.iter().map(|i| i.as_str()).collect::<Option<Vec<_>>>(),
        _ => Some(Vec::new()),
    };
    match strings("Territories") {
        Some(paths) if paths.iter().all(|p| p.split('/').all(|l| !l.trim().is_empty())) => {}
        _ => out.push((
            "Territories".into(),
            "Territories must be paths of names separated by /".into(),
        )),
    }
    if strings("Permissions").is_none() || strings("Teams").is_none() {
        out.push(("Permissions".into(), "Permissions and Teams must be lists of names".into()));
    }
    out
}
