//! Matching a sample's columns to a target's fields: case, space and punctuation do not
//! matter, and each field knows the names spreadsheets commonly give it.

use crate::schema::Schema;

/// Names a field commonly goes by in exports, beyond its own.
fn synonyms(field: &str) -> &'static [&'static str] {
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
}
