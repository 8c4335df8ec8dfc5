//! Each Repsly and Plannr target through the real binary (`once`) against the sandbox: a file
//! of valid and invalid rows, every stored value compared with its source cell, every refused
//! row found in the report on its line with its stage, and `read == accepted + failed +
//! unprocessed` in the summary.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use crm_ingest::sandbox::SandboxOptions;
use serde_json::{json, Value};

/// A config with one pipeline `p` of `target` on a Repsly or Plannr connection to `url`.
fn config(dir: &Path, url: &str, target: &str, fields: &str) -> PathBuf {
    let connection = if target.starts_with("repsly.") {
        format!(
            r#"kind = "repsly"
base_url = "{url}/v3"
username = "sandbox"
password = "sandbox""#
        )
    } else {
        format!(
            r#"kind = "plannr"
base_url = "{url}"
token = "sandbox-token"
account_uuid = "{}""#,
            common::plannr::ACCOUNT
        )
    };
    let mode = if target.starts_with("plannr.import.") { "mode = \"store\"" } else { "" };
    let text = format!(
        r#"
state_dir = "{dir}/state"
shutdown_timeout = "5s"
[log]
format = "json"
[connections.crm]
{connection}
rate_limit = "1000/s"
poll_interval = "20ms"
retry = {{ max_attempts = 10, initial_backoff = "10ms", max_backoff = "100ms" }}

[pipelines.p]
connection = "crm"
target = "{target}"
{mode}
source = {{ kind = "folder", path = "{dir}/inbox", settle = "200ms" }}
batch = {{ max_rows = 3, max_wait = "100ms" }}
[pipelines.p.fields]
{fields}
"#,
        dir = dir.display()
    );
    let path = dir.join("config.toml");
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// What one file did: the exit code and output, its summary, its report rows by line.
struct Outcome {
    code: i32,
    out: String,
    summary: Value,
    /// `_line` -> (`_stage`, `_field`, `_message`).
    failed: HashMap<u64, (String, String, String)>,
}

async fn once(dir: &Path, config: &Path, name: &str, csv: &str) -> Outcome {
    let file = dir.join(format!("{name}.csv"));
    std::fs::write(&file, csv).unwrap();
    let (code, out) = common::plannr::once(config, "p", dir, &file).await;
    let summary = summary(&dir.join(format!("reports/{name}.summary.json")));
    let mut failed = HashMap::new();
    let errors = dir.join(format!("reports/{name}.errors.csv"));
    if errors.exists() {
        let rows = read_report(&errors);
        let col = |n: &str| rows[0].iter().position(|h| h == n).unwrap();
        for r in &rows[1..] {
            let line = r[col("_line")].parse().unwrap();
            let entry =
                (r[col("_stage")].clone(), r[col("_field")].clone(), r[col("_message")].clone());
            failed.insert(line, entry);
        }
    }
    Outcome { code, out, summary, failed }
}

/// `csv` sent to `target` (`fields` its pipeline's field lines) by `once` against a sandbox
/// started with `options`; some rows fail, so `once` exits 1.
async fn import(
    options: SandboxOptions,
    target: &str,
    fields: &str,
    csv: &str,
) -> (TestSandbox, tempfile::TempDir, Outcome) {
    let sb = TestSandbox::start(options).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, target, fields);
    let o = once(dir.path(), &cfg, "file", csv).await;
    assert_eq!(o.code, 1, "{}", o.out);
    (sb, dir, o)
}

impl Outcome {
    /// Every row is accounted for, `accepted` of them accepted, the rest failed, none lost.
    fn counts(&self, read: u64, accepted: u64) {
        let rows = &self.summary["rows"];
        assert_eq!(rows["read"], read, "{}\n{}", self.summary, self.out);
        assert_eq!(rows["accepted"], accepted, "{}\n{}", self.summary, self.out);
        assert_eq!(rows["failed"], read - accepted, "{}", self.summary);
        assert_eq!(rows["unprocessed"], 0, "{}", self.summary);
        assert_eq!(self.failed.len() as u64, read - accepted, "every failed row is in the report");
    }

    /// The row on `line` failed at `stage`, its message holding `words`.
    fn refused(&self, line: u64, stage: &str, words: &str) {
        let Some((s, field, message)) = self.failed.get(&line) else {
            panic!("line {line} is not in the report: {:?}\n{}", self.failed, self.out)
        };
        assert_eq!(s, stage, "line {line}: {field} {message}");
        assert!(message.contains(words), "line {line}: `{message}` lacks `{words}`");
    }
}

fn stored(records: &Value, entity: &str) -> serde_json::Map<String, Value> {
    records["repsly"][entity].as_object().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_products_arrive_with_prices_packaging_and_attributes() {
    let fields = r#"Code = "SKU"
Name = "Product Name"
UnitPrice = "Price"
EAN = "Barcode"
ImageUrl = "Image"
Packaging = { column = "Packs", transform = ["split:|"] }
"CustomAttributes.Allergens" = "Allergens""#;
    let csv = "SKU,Product Name,Price,Barcode,Packs,Allergens,Image\n\
        P1,Tea,4.50,5012345678900,BOX6|BOX12,Nuts|Milk,https://cdn.example.com/p1.png\n\
        P2,Coffee,+007.25,,,,\n\
        P3,Cocoa,1.23456,,,,\n\
        P4,,3,,,,\n\
        P5,Sugar,2,,CRATE,,\n\
        P6,Salt,1,,,Peanuts,\n\
        P7,Flour,2.5,,,,www.example.com/p7.png\n";
    let (sb, _dir, o) = import(SandboxOptions::default(), "repsly.products", fields, csv).await;
    o.counts(7, 2);
    o.refused(4, "validate", "more than 4 decimal places");
    o.refused(5, "validate", "Name");
    o.refused(6, "remote", "no new packages can be added");
    o.refused(7, "remote", "`Peanuts` is not an option of `Allergens`");
    o.refused(8, "validate", "not an http:// or https:// address");
    let products = stored(&sb.records().await, "products");
    assert_eq!(products.len(), 2, "{products:?}");
    assert_eq!(
        products["P1"],
        json!({
            "Code": "P1", "Name": "Tea", "UnitPrice": 4.50, "EAN": "5012345678900",
            "ImageUrl": "https://cdn.example.com/p1.png",
            "Packaging": {"Codes": [{"Value": "BOX6"}, {"Value": "BOX12"}], "IsSet": true},
            "CustomAttributes": [{"AttributeTitle": "Allergens", "Value": "Nuts|Milk"}]
        })
    );
    assert_eq!(products["P2"], json!({"Code": "P2", "Name": "Coffee", "UnitPrice": 7.25}));
    let jobs = &o.summary["remote_jobs"];
    assert_eq!(
        jobs["by_status"]["Completed"], jobs["count"],
        "every job polled to its end: {jobs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_price_list_items_go_only_into_lists_that_exist() {
    let fields = r#"PricelistName = "Price List"
ProductCode = "SKU"
Price = "Price"
DateAvailableFrom = "From"
MinQuantity = "Min""#;
    let csv = "Price List,SKU,Price,From,Min\n\
        Retail,P1,4.5,2024-01-31,6\n\
        Wholesale,P1,3,,\n\
        Clearance,P1,1,,\n\
        Retail,P2,abc,,\n\
        Retail,P3,2,31/01/2024,\n\
        Retail,P4,2,,1.5\n";
    let (sb, _dir, o) =
        import(SandboxOptions::default(), "repsly.pricelist_items", fields, csv).await;
    o.counts(6, 2);
    o.refused(4, "remote", "pricelist `Clearance` does not exist");
    o.refused(5, "validate", "not a number");
    o.refused(6, "validate", "ISO date");
    o.refused(7, "validate", "not a whole number");
    let items = stored(&sb.records().await, "pricelist_items");
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items["Retail/P1"],
        json!({"PricelistName": "Retail", "ProductCode": "P1", "Price": 4.5,
               "DateAvailableFrom": "2024-01-31", "MinQuantity": 6})
    );
    assert_eq!(
        items["Wholesale/P1"],
        json!({"PricelistName": "Wholesale", "ProductCode": "P1", "Price": 3})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_accounts_arrive_by_code() {
    let fields = r#"Code = "Code"
Name = "Name"
Active = { column = "Active", transform = ["bool"] }
LogoUrl = "Logo""#;
    let csv = "Code,Name,Active,Logo\n\
        A1,Acme,yes,https://x.example/logo.png\n\
        A2,Beta,no,\n\
        A3,,yes,\n\
        A4,Delta,yes,logo.png\n\
        A5,REFUSED Co,yes,\n";
    let (sb, _dir, o) = import(refusing(), "repsly.accounts", fields, csv).await;
    o.counts(5, 2);
    o.refused(4, "validate", "Name");
    o.refused(5, "validate", "http");
    o.refused(6, "remote", "refused by the account's rules");
    let accounts = stored(&sb.records().await, "accounts");
    assert_eq!(
        accounts["A1"],
        json!({"Code": "A1", "Name": "Acme", "Active": true, "LogoUrl": "https://x.example/logo.png"})
    );
    assert_eq!(accounts["A2"], json!({"Code": "A2", "Name": "Beta", "Active": false}));
    assert_eq!(accounts.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_schedules_go_one_a_request_with_days_times_and_tasks() {
    let fields = r#"ScheduleCode = "Visit"
ClientCode = "Client"
UserID = "Rep"
ScheduledDate = "Date"
ScheduledTime = "Time"
RepeatDays = "Days"
RepeatEveryWeeks = "Every"
Tasks = { column = "Tasks", transform = ["split:;"] }
AlertUsersIfMissed = "Alert""#;
    let csv = "Visit,Client,Rep,Date,Time,Days,Every,Tasks,Alert\n\
        S1,C1,U1,2024-11-25,9:05,monday|Friday,1,photo: Shelf; Note: Ask about stock,boss@example.com\n\
        S2,C2,U1,2024-11-26,,,,,\n\
        S3,C3,U1,26/11/2024,,,,,\n\
        S4,C4,U1,2024-11-27,25:00,,,,\n\
        S5,C5,U1,2024-11-27,,Funday,,,\n\
        S6,C-REFUSED,U1,2024-11-27,,,,,\n\
        S7,C7,U1,2024-11-27,,,,Dance: now,\n";
    let (sb, _dir, o) = import(refusing(), "repsly.schedules", fields, csv).await;
    o.counts(7, 2);
    o.refused(4, "validate", "ISO date");
    o.refused(5, "validate", "not a time like 15:00");
    o.refused(6, "validate", "`Funday` is not one of");
    o.refused(7, "remote", "refused by the account's rules");
    o.refused(8, "validate", "`Dance` is not one of");
    let schedules = stored(&sb.records().await, "schedules");
    assert_eq!(
        schedules["S1"],
        json!({
            "ScheduleCode": "S1", "ClientCode": "C1", "UserID": "U1", "ScheduledDate": "2024-11-25",
            "ScheduledTime": "09:05", "RepeatDays": "Monday|Friday", "RepeatEveryWeeks": 1,
            "Tasks": [{"TaskType": "Photo", "TaskDescription": "Shelf"},
                      {"TaskType": "Note", "TaskDescription": "Ask about stock"}],
            "AlertUsersIfMissed": "boss@example.com"
        })
    );
    assert_eq!(
        schedules["S2"],
        json!({"ScheduleCode": "S2", "ClientCode": "C2", "UserID": "U1", "ScheduledDate": "2024-11-26"})
    );
    assert_eq!(schedules.len(), 2);
    assert_eq!(o.summary["remote_jobs"]["count"], 3, "one request per schedule sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_users_answer_inline_and_the_summary_shows_the_seats() {
    let fields = r#"Code = "Code"
Name = "Name"
Email = "Email"
Role = "Role"
Territories = { column = "Territories", transform = ["split:;"] }
Active = { column = "Active", transform = ["bool"] }"#;
    let csv = "Code,Name,Email,Role,Territories,Active\n\
        U1,Ann,ann@example.com,Admin|Representative,UK/North;UK/South,yes\n\
        U2,Bob,bob@example.com,representative,,yes\n\
        U3,Cy,not-an-email,,,yes\n\
        U4,Di,di@example.com,Boss,,yes\n\
        U5,REFUSED,e@example.com,,,yes\n";
    let (sb, dir, o) = import(refusing(), "repsly.users", fields, csv).await;
    o.counts(5, 2);
    o.refused(4, "validate", "not an email address");
    let check = run(&["check", "--config", &dir.path().join("config.toml").to_string_lossy()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("billed"), "check warns that users change the bill: {said}");
    let listed = "repsly.users takes: Code (text, at most 20, required); Name (text, at most 80)";
    assert!(said.contains(listed), "check lists the target's fields: {said}");
    assert!(said.contains("Role (list, sent joined by `|`)"), "{said}");
    o.refused(5, "validate", "`Boss` is not one of");
    o.refused(6, "remote", "refused by the account's rules");
    let users = stored(&sb.records().await, "users");
    assert_eq!(
        users["U1"],
        json!({"Code": "U1", "Name": "Ann", "Email": "ann@example.com",
               "Role": "Admin|Representative", "Territories": ["UK/North", "UK/South"], "Active": true})
    );
    assert_eq!(users["U2"]["Role"], "Representative", "a role as the docs spell it");
    assert_eq!(users.len(), 2);
    // The account had 3 active users; two more are active after the file.
    assert_eq!(o.summary["seats"], json!({"before": 3, "after": 5}), "{}", o.summary);
    assert_eq!(o.summary["remote_jobs"]["count"], 0, "users answer inline: no job to poll");
}

/// A sandbox that refuses, in the job's answer, any record holding `REFUSED`.
fn refusing() -> SandboxOptions {
    SandboxOptions { refuse: Some("REFUSED".into()), ..Default::default() }
}

const ANN: &str = "a1111111-1111-4111-8111-111111111111";

fn plannr_clients() -> Vec<Value> {
    let client = |uuid: &str, first: &str, email: &str| json!({"uuid": uuid, "first_name": first, "last_name": "Client", "email": email});
    vec![
        client(ANN, "Ann", "ann@example.com"),
        client("b2222222-2222-4222-8222-222222222222", "Dup", "dup@example.com"),
        client("c3333333-3333-4333-8333-333333333333", "Dup2", "dup@example.com"),
        client("d4444444-4444-4444-8444-444444444444", "Jo", "jo@example.com"),
        client("e5555555-5555-4555-8555-555555555555", "Bojo", "bojo@example.com"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn plannr_plans_find_their_client_by_email_and_send_uk_dates() {
    let options = SandboxOptions { plannr_accounts: plannr_clients(), ..Default::default() };
    let fields = r#"client_uuid = { column = "Client Email", lookup = { by = "email" } }
name = "Plan"
provider = "Provider"
value = "Value"
opened_at = "Opened""#;
    let csv = "Client Email,Plan,Provider,Value,Opened\n\
        ann@example.com,Pension,Aviva,500000,1999-06-28\n\
        ANN@example.com ,ISA,Vanguard,1000,28/06/2001\n\
        nobody@example.com,GIA,Aviva,1,\n\
        dup@example.com,Bond,Aviva,1,\n\
        ,Orphan,Aviva,1,\n\
        jo@example.com,SIPP,AJ Bell,250,\n\
        ann@example.com,Bad,Aviva,12.5,\n";
    let (sb, _dir, o) = import(options, "plannr.import.plans", fields, csv).await;
    o.counts(7, 3);
    o.refused(4, "validate", "no client has the primary email `nobody@example.com`");
    o.refused(5, "validate", "2 clients have the primary email `dup@example.com`");
    o.refused(6, "validate", "client_uuid");
    o.refused(8, "validate", "not a whole number");
    let records = sb.records().await;
    let plans = records["plannr"]["records"]["plans"].as_array().cloned().unwrap_or_default();
    let by_name = |n: &str| plans.iter().find(|p| p["name"] == n).cloned().unwrap_or_default();
    assert_eq!(plans.len(), 3, "{plans:?}");
    assert_eq!(by_name("Pension")["client_uuid"], ANN);
    assert_eq!(by_name("Pension")["opened_at"], "28/06/1999", "an ISO date is sent DD/MM/YYYY");
    assert_eq!(by_name("Pension")["value"], "500000");
    assert_eq!(by_name("Pension")["provider"], "Aviva");
    assert_eq!(by_name("ISA")["client_uuid"], ANN, "emails compare without case or spaces");
    assert_eq!(by_name("ISA")["opened_at"], "28/06/2001", "a UK date is kept");
    assert_eq!(
        by_name("SIPP")["client_uuid"],
        "d4444444-4444-4444-8444-444444444444",
        "the exact email, not bojo@ that also matches in part"
    );
    let lookups = sb
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["method"] == "GET" && r["path"].as_str().unwrap_or("").starts_with("/api/v1/account")
        })
        .count();
    assert_eq!(lookups, 4, "each email asked once per file (ann, nobody, dup, jo)");
}

#[tokio::test(flavor = "multi_thread")]
async fn plannr_premiums_check_their_lists_numbers_and_dates() {
    let fields = r#"plan_uuid = "Plan"
transfer_type = "Transfer"
payment_method = "Method"
amount = "Amount"
date_advice_given = "Advice""#;
    let unknown_plan = "f6666666-6666-4666-8666-666666666666";
    let csv = format!(
        "Plan,Transfer,Method,Amount,Advice\n\
        ,switch,direct debit,100.50,2024-01-31\n\
        ,transfer,bank transfer,20,31/01/2024\n\
        ,swap,direct debit,1,\n\
        ,switch,direct debit,abc,\n\
        {unknown_plan},switch,direct debit,1,\n"
    );
    let (sb, _dir, o) =
        import(SandboxOptions::default(), "plannr.import.premiums", fields, &csv).await;
    o.counts(5, 2);
    o.refused(4, "validate", "`swap` is not one of switch, transfer");
    o.refused(5, "validate", "not a number");
    o.refused(6, "remote", "The selected plan uuid is invalid.");
    let records = sb.records().await;
    let premiums = records["plannr"]["records"]["premiums"].as_array().cloned().unwrap_or_default();
    assert_eq!(premiums.len(), 2, "{premiums:?}");
    assert_eq!(premiums[0]["transfer_type"], "switch");
    assert_eq!(premiums[0]["payment_method"], "direct debit");
    assert_eq!(premiums[0]["amount"], "100.50");
    assert_eq!(premiums[0]["date_advice_given"], "31/01/2024", "DD/MM/YYYY as the docs ask");
    assert_eq!(premiums[1]["date_advice_given"], "31/01/2024");
    assert_eq!(premiums[1]["amount"], "20");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_and_check_know_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("products.csv");
    std::fs::write(&sample, "SKU,Product Name,Price,Barcode\nP1,Tea,4.50,501\n").unwrap();
    let out = dir.path().join("products.toml");
    let init = run(&[
        "init",
        "--target",
        "repsly.products",
        &sample.to_string_lossy(),
        "--output",
        &out.to_string_lossy(),
    ]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    for (field, column) in
        [("Code", "SKU"), ("Name", "Product Name"), ("UnitPrice", "Price"), ("EAN", "Barcode")]
    {
        let matched = text
            .lines()
            .any(|l| l.starts_with(&format!("{field} = ")) && l.contains(&format!("\"{column}\"")));
        assert!(matched, "init matched {field} to {column}:\n{text}");
    }
    let cfg = config(dir.path(), "http://127.0.0.1:9", "repsly.gadgets", "Code = \"Code\"");
    let check = run(&["check", "--config", &cfg.to_string_lossy()]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(!check.status.success());
    assert!(said.contains("unknown target `repsly.gadgets`"), "{said}");
    for known in [
        "repsly.products",
        "repsly.pricelist_items",
        "repsly.accounts",
        "repsly.schedules",
        "repsly.users",
        "plannr.import.plans",
        "plannr.import.premiums",
    ] {
        assert!(said.contains(known), "check names {known} among the known targets: {said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_a_lookup_the_target_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |target: &str, fields: &str| {
        let cfg = config(dir.path(), "http://127.0.0.1:9", target, fields);
        let check = run(&["check", "--config", &cfg.to_string_lossy()]);
        assert!(!check.status.success(), "{target}: {fields}");
        String::from_utf8_lossy(&check.stderr).into_owned()
    };
    let said = refused("repsly.clients", "Code = { column = \"E\", lookup = { by = \"email\" } }");
    assert!(said.contains("repsly.clients has no field a lookup can fill"), "{said}");
    let said = refused(
        "plannr.import.plans",
        "client_uuid = { column = \"E\", lookup = { by = \"phone\" } }",
    );
    assert!(said.contains("lookup by `phone` is not known (known: email)"), "{said}");
    let said =
        refused("plannr.import.plans", "name = { column = \"E\", lookup = { by = \"email\" } }");
    assert!(said.contains("a lookup fills only client_uuid"), "{said}");
}
