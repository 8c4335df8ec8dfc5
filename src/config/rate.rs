//! `N/s`, `N/min`, `N/h` rate limits.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A request budget: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (n, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid rate limit `{text}`: expected N/s, N/min or N/h"))?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0).ok_or_else(|| {
            format!("invalid rate limit `{text}`: `{n}` is not a positive whole number")
        })?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => {
                return Err(format!(
                    "invalid rate limit `{text}`: unit `{other}` is not one of s, min, h"
                ))
            }
        };
        Ok(Self { count, per })
    }

    /// Time between two requests when the budget is spread evenly.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }

    /// Requests per second, for display and utilisation figures.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RateLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_units() {
        assert_eq!(RateLimit::parse("500/min").unwrap().interval(), Duration::from_millis(120));
        assert_eq!(RateLimit::parse("5/s").unwrap().interval(), Duration::from_millis(200));
        assert_eq!(RateLimit::parse("3600/h").unwrap().interval(), Duration::from_secs(1));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["500", "0/s", "-1/s", "5/day", "x/min"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }
}
