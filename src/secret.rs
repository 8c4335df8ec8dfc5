//! A string that must never reach logs, reports or `Debug` output.

use std::fmt;

/// Holds a token or password. `Debug` and `Display` print `***`; only [`Secret::expose`]
/// gives the value, and only the HTTP layer calls it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for building an `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` with the `user:password@` it may carry replaced by `***@`, for showing or logging
/// it. Works on any text, a URL that does not parse included.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden_from_a_shown_url() {
        assert_eq!(redact_url("https://u:pw@crm.example/v3"), "https://***@crm.example/v3");
        assert_eq!(redact_url("https://crm.example/a@b"), "https://crm.example/a@b");
        assert_eq!(redact_url("http://127.0.0.1:9/v3"), "http://127.0.0.1:9/v3");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    proptest::proptest! {
        #[test]
        fn a_redacted_url_never_shows_its_password(
            scheme in "[a-z]{1,5}",
            user in "[^@/?#]{0,12}",
            password in "[a-zA-Z0-9]{6,12}",
            host in "[a-z0-9.-]{1,20}",
            path in "[^\\s]{0,30}",
        ) {
            let url = format!("{scheme}://{user}:{password}@{host}/{path}");
            let shown = redact_url(&url);
            let userinfo = format!(":{password}@");
            proptest::prop_assert!(!shown.contains(&userinfo), "{}", shown);
            let tail = format!("@{host}/{path}");
            proptest::prop_assert!(shown.ends_with(&tail), "{}", shown);
        }

        #[test]
        fn any_text_is_redacted_without_a_panic(text in "\\PC{0,80}") {
            let _ = redact_url(&text);
        }
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
