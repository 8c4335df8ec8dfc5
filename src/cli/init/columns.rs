//! Matching a sample's columns to a target's fields: case, space and punctuation do not
//! matter, and each field knows the names spreadsheets commonly give it.

use crate::schema::Schema;

/// Names a field commonly goes by in exports, beyond its own.
fn synonyms(field: &str) -> &'static [&'static str] {
    match repsly_client_synonyms(field) {
        [] => other_synonyms(field),
        names => names,
    }
}

/// Names of Repsly's client fields.
fn repsly_client_synonyms(field: &str) -> &'static [&'static str] {
    match field {
        // Repsly clients.
        "Code" => &[
            "customer id",
            "customer code",
            "client code",
            "account code",
            "customer number",
            "account number",
            "client id",
            "id",
            // Repsly products and accounts.
            "sku",
            "product code",
            "item code",
        ],
        "Name" => &[
            "company",
            "company name",
            "business",
            "business name",
            "account name",
            "client name",
            "customer name",
            "organisation",
            "organization",
            "product name",
            "product",
            "description",
            "item name",
        ],
        "Email" | "email" => &["e-mail", "email address", "e-mail address", "mail"],
        "Phone" => &["telephone", "tel", "phone number", "landline", "work phone"],
        "Mobile" => &["mobile phone", "cell", "cell phone", "mobile number"],
        "StreetAddress" => &["address", "street", "address line 1", "address 1", "street address"],
        "City" => &["town", "town/city", "city/town"],
        "ZIP" => &["postcode", "post code", "postal code", "zip code", "zip"],
        "State" => &["county", "province", "region/state"],
        "Country" => &["nation"],
        "Territory" => &["area", "sales territory", "region"],
        "ContactName" => &["contact", "contact person", "main contact"],
        "ContactTitle" => &["job title", "contact title", "position"],
        "Note" => &["notes", "comment", "comments", "remarks"],
        "Website" => &["web", "url", "web site", "homepage"],
        "Active" => &["is active", "enabled", "live"],
        "RepresentativeName" => &["rep", "sales rep", "representative", "account manager"],
        "RepresentativeCode" => &["rep code", "sales rep code"],
        "Tag" => &["tags", "labels"],
        "PriceLists" => &["price list", "price lists", "pricelist"],
        _ => &[],
    }
}

/// Names of every other target's fields: Repsly's products, price-list items, accounts,
/// schedules and users; Plannr's clients, plans, premiums and contact details.
fn other_synonyms(field: &str) -> &'static [&'static str] {
    match field {
        "UnitPrice" => &["price", "unit price", "list price", "rrp", "selling price"],
        "EAN" => &["barcode", "bar code", "ean code", "gtin", "upc"],
        "AdditionalBarcodes" => &["other barcodes", "additional barcodes", "more barcodes"],
        "ProductGroupCode" => &["category code", "group code", "product group code"],
        "ProductGroupName" => &["category", "product group", "group", "product category"],
        "ImageUrl" => &["image", "image url", "picture", "photo url"],
        "Packaging" => &["packages", "package", "pack", "pack size"],
        "PricelistName" => &["price list", "pricelist", "price list name", "list"],
        "ProductCode" => &["sku", "product", "product sku", "item code", "product id"],
        "Price" => &["unit price", "amount", "list price"],
        "DateAvailableFrom" => &["valid from", "available from", "from", "start date"],
        "DateAvailableTo" => &["valid to", "available to", "until", "to", "end date"],
        "MinQuantity" => &["min qty", "minimum quantity", "min quantity"],
        "MaxQuantity" => &["max qty", "maximum quantity", "max quantity"],
        "LogoUrl" => &["logo", "logo url"],
        "ScheduleCode" => &["schedule id", "visit id", "schedule"],
        "ClientCode" => &["client", "customer", "customer code", "client code", "account code"],
        "UserID" => &["user", "rep", "rep code", "representative", "user code", "sales rep"],
        "ScheduledDate" => &["date", "visit date", "scheduled date"],
        "ScheduledTime" => &["time", "visit time", "start time"],
        "ScheduledDuration" => &["duration", "minutes", "length"],
        "RepeatEveryWeeks" => &["repeat every", "every weeks", "weeks", "repeat weeks"],
        "RepeatDays" => &["days", "repeat on", "week days", "weekdays"],
        "Tasks" => &["task", "to do", "todo"],
        "Role" => &["roles", "user role", "permission level"],
        "Territories" => &["territory", "areas", "regions"],
        // Plannr plans and premiums.
        // A column of emails is matched as a lookup's key instead ([`match_lookups`]).
        "client_uuid" => &["client uuid", "client id", "client"],
        "plan_uuid" => &["plan uuid", "plan id"],
        "opened_at" => &["opened", "start date", "date opened", "opened on"],
        "inactive_at" => &["closed", "date closed", "inactive date", "end date"],
        "plan_type" => &["plan type", "product type"],
        "provider" => &["provider name", "company", "product provider"],
        "value" => &["plan value", "valuation", "current value"],
        "amount" => &["premium", "contribution", "premium amount"],
        "payment_method" => &["payment method", "paid by"],
        "transfer_type" => &["transfer type"],
        "date_advice_given" => &["advice date", "date of advice", "advice given"],
        "frequency" => &["payment frequency", "how often"],
        // Plannr clients.
        "first_name" => &["first name", "forename", "given name", "firstname"],
        "last_name" => &["surname", "last name", "family name", "lastname"],
        "middle_name" => &["middle name", "middle names"],
        "phone" => &["telephone", "mobile", "phone number", "tel", "mobile phone"],
        "date_of_birth" => &["dob", "date of birth", "birth date", "birthday"],
        "ni_number" => &["ni number", "national insurance", "national insurance number", "nino"],
        "title" => &["salutation", "honorific"],
        "gender" => &["sex"],
        "marital_status" => &["marital status"],
        // Plannr contact details.
        "name" => &["label", "description"],
        "is_primary" => &["primary", "is primary", "main"],
        "account_uuids" => {
            &["client uuids", "client uuid", "account uuid", "accounts", "client ids"]
        }
        _ => &[],
    }
}

/// Lowercase letters and digits only: `Customer-ID ` and `customer id` compare equal.
pub fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// For each field of `schema` (in schema order), the column of `header` it matches, if any;
/// a column is used once, by the first field that names it exactly, then by synonym.
pub fn match_columns(schema: &Schema, header: &[String]) -> Vec<(&'static str, Option<usize>)> {
    let folded: Vec<String> = header.iter().map(|h| fold(h)).collect();
    let mut taken = vec![false; header.len()];
    let mut out: Vec<(&'static str, Option<usize>)> =
        schema.fields.iter().map(|f| (f.name, None)).collect();
    // Exact names first, so `Phone` keeps the column "Phone" before `phone` synonyms roam.
    for pass in 0..2 {
        for (field, slot) in out.iter_mut() {
            if slot.is_some() {
                continue;
            }
            let names: Vec<String> = if pass == 0 {
                vec![fold(field)]
            } else {
                synonyms(field).iter().map(|s| fold(s)).collect()
            };
            let hit = folded.iter().enumerate().find(|(i, f)| !taken[*i] && names.contains(f));
            if let Some((i, _)) = hit {
                taken[i] = true;
                *slot = Some(i);
            }
        }
    }
    out
}

/// Names of a column of client emails, best first: the key a lookup finds a client by.
const EMAIL_NAMES: &[&str] = &[
    "client email",
    "client e-mail",
    "client email address",
    "email",
    "e-mail",
    "email address",
    "primary email",
];

/// Fills each field a lookup can fill (Plannr `client_uuid`) that no column matched with a
/// column of emails not taken yet, by its name; returns the fields so filled, whose values
/// are then emails to look the record up by.
pub fn match_lookups(
    schema: &Schema,
    header: &[String],
    matches: &mut [(&'static str, Option<usize>)],
) -> Vec<&'static str> {
    let folded: Vec<String> = header.iter().map(|h| fold(h)).collect();
    let mut filled = Vec::new();
    for field in schema.lookups {
        let taken: Vec<usize> = matches.iter().filter_map(|(_, c)| *c).collect();
        let Some((_, slot)) = matches.iter_mut().find(|(f, c)| f == field && c.is_none()) else {
            continue;
        };
        let free = |i: &usize| !taken.contains(i);
        let column = EMAIL_NAMES
            .iter()
            .find_map(|n| (0..header.len()).filter(free).find(|i| folded[*i] == fold(n)));
        if let Some(c) = column {
            *slot = Some(c);
            filled.push(*field);
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_whatever_their_case_spacing_or_synonym() {
        let header: Vec<String> =
            ["Customer-ID", "Company", "E-mail", "Postcode", "Town", "Notes", "Extra"]
                .map(String::from)
                .into();
        let m = match_columns(&crate::schema::REPSLY_CLIENTS, &header);
        let get = |f: &str| m.iter().find(|(n, _)| *n == f).and_then(|(_, c)| *c);
        assert_eq!(get("Code"), Some(0));
        assert_eq!(get("Name"), Some(1));
        assert_eq!(get("Email"), Some(2));
        assert_eq!(get("ZIP"), Some(3));
        assert_eq!(get("City"), Some(4));
        assert_eq!(get("Note"), Some(5));
        let header: Vec<String> =
            ["First Name", "Surname", "DOB", "Mobile"].map(String::from).into();
        let m = match_columns(&crate::schema::PLANNR_CLIENTS, &header);
        let get = |f: &str| m.iter().find(|(n, _)| *n == f).and_then(|(_, c)| *c);
        assert_eq!(
            (get("first_name"), get("last_name"), get("date_of_birth"), get("phone")),
            (Some(0), Some(1), Some(2), Some(3))
        );
    }

    #[test]
    fn product_and_price_list_exports_match_by_their_usual_names() {
        let header: Vec<String> =
            ["SKU", "Product Name", "Price", "Barcode", "Category"].map(String::from).into();
        let m = match_columns(&crate::schema::REPSLY_PRODUCTS, &header);
        let get = |f: &str| m.iter().find(|(n, _)| *n == f).and_then(|(_, c)| *c);
        assert_eq!(
            (get("Code"), get("Name"), get("UnitPrice"), get("EAN"), get("ProductGroupName")),
            (Some(0), Some(1), Some(2), Some(3), Some(4))
        );
        let header: Vec<String> = ["Price List", "SKU", "Price"].map(String::from).into();
        let m = match_columns(&crate::schema::REPSLY_PRICELIST_ITEMS, &header);
        let get = |f: &str| m.iter().find(|(n, _)| *n == f).and_then(|(_, c)| *c);
        assert_eq!(
            (get("PricelistName"), get("ProductCode"), get("Price")),
            (Some(0), Some(1), Some(2))
        );
    }
}
