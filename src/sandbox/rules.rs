//! The sandbox's own rules, written apart from the client's (it imports none of its
//! validators, encoders or parsers, so the two cannot be wrong the same way): what Laravel's
//! `email` rule takes, UUIDs by the `uuid` crate, phones by libphonenumber, and budgets.

use std::time::Duration;

/// Laravel's default `email` rule in spirit: one `@`, something before it, a dotted domain
/// after it, no spaces.
pub fn email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

pub fn uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

/// A UK-format or international phone, as Plannr's contact details take it.
pub fn phone(s: &str) -> bool {
    let gb = "GB".parse::<phonenumber::country::Id>().ok();
    phonenumber::parse(gb, s).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// A request budget: at most `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub count: u32,
    pub per: Duration,
}

impl Budget {
    /// `N/s`, `N/min` or `N/h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (n, unit) =
            text.split_once('/').ok_or_else(|| format!("`{text}` is not N/s, N/min or N/h"))?;
        let count = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("`{n}` is not a positive count"))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("`{other}` is not s, min or h")),
        };
        Ok(Self { count, per })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(email("a.b@example.co.uk"));
        assert!(!email("a@b") && !email("a b@example.com") && !email("@example.com"));
        assert!(uuid("9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b"));
        assert!(!uuid("not-a-uuid"));
        assert!(phone("020 7946 0958") && phone("+33 1 23 45 67 89") && !phone("12"));
        assert_eq!(Budget::parse("20/s").unwrap().count, 20);
        assert!(Budget::parse("20/day").is_err());
    }
}
