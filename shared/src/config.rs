//! Configuration from the environment, read once at cold start. A missing or malformed setting
//! stops the function at init with a message naming the variable, never mid-request.

use chrono::Duration;

use crate::domain::{BusinessCalendar, CalendarError};

#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    /// The verified SES identity mail is sent from.
    pub mail_from: String,
    pub ses_configuration_set: Option<String>,
    /// Where the public API (and the `/verify` page) is reached, without a trailing slash.
    pub public_base_url: String,
    pub calendar: BusinessCalendar,
    pub verification: VerificationPolicy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationPolicy {
    pub token_lifetime: Duration,
    pub max_wrong_attempts: u32,
    /// Verification emails one address can receive per `email_window`: the inbox-flood guard.
    pub max_emails_per_window: u32,
    pub email_window: Duration,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        VerificationPolicy {
            token_lifetime: Duration::hours(24),
            max_wrong_attempts: 5,
            max_emails_per_window: 3,
            email_window: Duration::hours(1),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required =
            |name: &'static str| get(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing(name));
        let invalid = |name: &'static str, why: &dyn std::fmt::Display| ConfigError::Invalid {
            name,
            why: why.to_string(),
        };

        let public_base_url = required("PUBLIC_BASE_URL")?.trim_end_matches('/').to_owned();
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://")) {
            return Err(invalid("PUBLIC_BASE_URL", &"must start with https:// (or http:// locally)"));
        }
        let zone = get("BUSINESS_TIME_ZONE").unwrap_or_else(|| "Europe/Amsterdam".to_owned());
        let holidays = get("BUSINESS_HOLIDAYS").unwrap_or_default();
        let calendar = BusinessCalendar::parse(&zone, &holidays).map_err(|e| match e {
            CalendarError::UnknownZone(_) => invalid("BUSINESS_TIME_ZONE", &e),
            CalendarError::BadHoliday(_) => invalid("BUSINESS_HOLIDAYS", &e),
        })?;
        let mut verification = VerificationPolicy::default();
        if let Some(raw) = get("VERIFICATION_EMAILS_PER_HOUR") {
            verification.max_emails_per_window = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("VERIFICATION_EMAILS_PER_HOUR", &"must be a positive integer"))?;
        }
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            mail_from: required("MAIL_FROM")?,
            ses_configuration_set: get("SES_CONFIGURATION_SET").filter(|v| !v.trim().is_empty()),
            public_base_url,
            calendar,
            verification,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "requests"),
        ("MAIL_FROM", "privacy@example.com"),
        ("PUBLIC_BASE_URL", "https://privacy.example.com/"),
    ];

    #[test]
    fn defaults_follow_the_policy() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.public_base_url, "https://privacy.example.com");
        assert_eq!(c.verification, VerificationPolicy::default());
        assert_eq!(c.verification.max_emails_per_window, 3);
        assert_eq!(c.calendar.zone_name(), "Europe/Amsterdam");
    }

    #[test]
    fn the_email_cap_is_configurable() {
        let mut pairs = BASE.to_vec();
        pairs.push(("VERIFICATION_EMAILS_PER_HOUR", "10"));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap().verification.max_emails_per_window, 10);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            Config::from_lookup(lookup(&BASE[..2])).unwrap_err(),
            ConfigError::Missing("PUBLIC_BASE_URL")
        );
        for (name, value) in [
            ("PUBLIC_BASE_URL", "ftp://x"),
            ("BUSINESS_TIME_ZONE", "Nowhere/Land"),
            ("BUSINESS_HOLIDAYS", "tomorrow"),
            ("VERIFICATION_EMAILS_PER_HOUR", "0"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, value));
            match Config::from_lookup(lookup(&pairs)) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
