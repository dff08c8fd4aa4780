//! The staff API's local key, which must only ever open the API of the local stack: it is
//! accepted only when every way the AWS SDK can pick an endpoint leads to a loopback address, so
//! no configuration of a deployed function (which talks to AWS itself) can make it work.
//!
//! The SDK (aws-config) takes an endpoint from, most specific first: code (none here),
//! `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, and a profile's `services` section or
//! `endpoint_url` in the config and credentials files; `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or
//! the profile setting) turns all of them off, which means real AWS. Anything not proven local
//! is refused.

use lambda_http::http::Uri;
use std::net::IpAddr;
use std::path::PathBuf;
use url::{Host, Url};

use super::{ConfigError, Env, invalid};
use crate::domain::TokenHash;

const KEY: &str = "STAFF_LOCAL_KEY";
const MIN_KEY_CHARS: usize = 24;

/// The staff API's local key, hashed; `None` when none is configured.
pub fn local_staff_key(env: &Env) -> Result<Option<TokenHash>, ConfigError> {
    let Some(key) = env.get(KEY) else { return Ok(None) };
    if let Err(why) = every_endpoint_is_loopback(env) {
        return Err(invalid(
            KEY,
            format!(
                "a local staff key is only accepted when every AWS endpoint is a loopback address (the local stack): {why}"
            ),
        ));
    }
    if key.chars().count() < MIN_KEY_CHARS {
        return Err(invalid(KEY, format!("must be at least {MIN_KEY_CHARS} characters")));
    }
    Ok(Some(TokenHash::of_secret(&key)))
}

/// Why the endpoints are not provably local. Names settings and files, never their values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum NotLocal {
    #[error("AWS_ENDPOINT_URL is not set, so the SDK would use AWS's own endpoints")]
    NoEndpoint,
    #[error("{0} is not a loopback http(s) URL")]
    NotLoopback(String),
    #[error("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS makes the SDK ignore the configured endpoints")]
    Ignored,
    #[error("the environment cannot be listed to check every AWS_ENDPOINT_URL_<SERVICE>")]
    Unlisted,
    #[error("the AWS profile file {0} could set an endpoint (it mentions endpoint_url)")]
    ProfileEndpoint(String),
    #[error("the AWS profile file {0} exists but cannot be read to check it")]
    UnreadableProfile(String),
}

fn every_endpoint_is_loopback(env: &Env) -> Result<(), NotLocal> {
    // Any value but an explicit false may be read as true by some SDK: refuse.
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
        return Err(NotLocal::Ignored);
    }
    let global = env.get("AWS_ENDPOINT_URL").ok_or(NotLocal::NoEndpoint)?;
    if !is_loopback(&global) {
        return Err(NotLocal::NotLoopback("AWS_ENDPOINT_URL".to_owned()));
    }
    for (name, value) in env.with_prefix("AWS_ENDPOINT_URL_").ok_or(NotLocal::Unlisted)? {
        if !is_loopback(&value) {
            return Err(NotLocal::NotLoopback(name));
        }
    }
    for file in profile_files(env) {
        check_profile_file(&file)?;
    }
    Ok(())
}

/// The config and credentials files the SDK reads, `~` expanded the way it does.
fn profile_files(env: &Env) -> [PathBuf; 2] {
    let home = env.get("HOME");
    let expand = |path: String| match (path.strip_prefix("~/"), &home) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    };
    let config = env.get("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".to_owned());
    let credentials =
        env.get("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".to_owned());
    [expand(config), expand(credentials)]
}

/// Parsing profiles exactly as the SDK does is not worth the risk: a file that mentions
/// `endpoint_url` anywhere (which also covers `ignore_configured_endpoint_urls`) is refused.
fn check_profile_file(path: &PathBuf) -> Result<(), NotLocal> {
    let shown = || path.display().to_string();
    match std::fs::read(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(NotLocal::UnreadableProfile(shown())),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            if text.contains("endpoint_url") { Err(NotLocal::ProfileEndpoint(shown())) } else { Ok(()) }
        }
    }
}

/// An http(s) URL whose host is `localhost` or a loopback address, with no user info, read the
/// same by a WHATWG parser (`url`) and by the `http` crate's parser the SDK uses, so a URL that
/// the two read differently is never taken for local.
fn is_loopback(raw: &str) -> bool {
    let Ok(url) = Url::parse(raw) else { return false };
    let Ok(uri) = raw.parse::<Uri>() else { return false };
    if !matches!(url.scheme(), "http" | "https") || uri.scheme_str() != Some(url.scheme()) {
        return false;
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || uri.authority().is_none_or(|a| a.as_str().contains('@'))
    {
        return false;
    }
    let url_host = match url.host() {
        Some(Host::Domain("localhost")) => Host::Domain("localhost".to_owned()),
        Some(Host::Ipv4(ip)) if ip.is_loopback() => Host::Ipv4(ip),
        Some(Host::Ipv6(ip)) if ip.is_loopback() => Host::Ipv6(ip),
        _ => return false,
    };
    let Some(uri_host) = uri.host() else { return false };
    let uri_host = match uri_host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Host::Ipv4(ip),
        Ok(IpAddr::V6(ip)) => Host::Ipv6(ip),
        Err(_) if uri_host.eq_ignore_ascii_case("localhost") => Host::Domain("localhost".to_owned()),
        Err(_) => return false,
    };
    url_host == uri_host
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, Env, local_staff_key};

    const KEY: &str = "0123456789abcdefghijklmnop";

    fn outcome(pairs: &[(&str, &str)]) -> Result<bool, ConfigError> {
        let mut all = vec![("STAFF_LOCAL_KEY", KEY)];
        all.extend_from_slice(pairs);
        local_staff_key(&Env::from_pairs(&all)).map(|key| key.is_some())
    }

    fn accepted(pairs: &[(&str, &str)]) {
        assert_eq!(outcome(pairs), Ok(true), "{pairs:?}");
    }

    fn refused(pairs: &[(&str, &str)]) {
        match outcome(pairs) {
            Err(ConfigError::Invalid { name: "STAFF_LOCAL_KEY", .. }) => {}
            other => panic!("{pairs:?} was not refused: {other:?}"),
        }
    }

    /// A profile file holding `text`, removed when dropped.
    struct ProfileFile(std::path::PathBuf);

    impl ProfileFile {
        fn new(text: &str) -> ProfileFile {
            let path = std::env::temp_dir().join(format!("aws-config-{}", uuid::Uuid::new_v4().simple()));
            std::fs::write(&path, text).unwrap();
            ProfileFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for ProfileFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn without_a_key_nothing_is_checked() {
        assert_eq!(local_staff_key(&Env::from_pairs(&[])), Ok(None));
        let deployed =
            Env::from_pairs(&[("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.eu-west-1.amazonaws.com")]);
        assert_eq!(local_staff_key(&deployed), Ok(None));
    }

    #[test]
    fn the_key_is_accepted_with_a_loopback_endpoint() {
        for endpoint in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1",
            "http://127.0.0.1:5000/",
            "http://localhost:4566",
            "http://LOCALHOST:4566",
            "http://127.1.2.3:5000",
            "http://[::1]:5000",
            "https://localhost:4566",
        ] {
            accepted(&[("AWS_ENDPOINT_URL", endpoint)]);
        }
    }

    #[test]
    fn the_key_is_refused_without_an_endpoint_or_a_short_key() {
        refused(&[]);
        refused(&[("AWS_ENDPOINT_URL", "")]);
        let short =
            Env::from_pairs(&[("STAFF_LOCAL_KEY", "short"), ("AWS_ENDPOINT_URL", "http://localhost:5000")]);
        assert!(matches!(local_staff_key(&short), Err(ConfigError::Invalid { name: "STAFF_LOCAL_KEY", .. })));
    }

    #[test]
    fn an_endpoint_only_looking_like_loopback_is_refused() {
        for endpoint in [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://127.0.0.1.evil.com",
            "http://localhost@evil.com",
            "http://localhost:5000@evil.com",
            "http://127.0.0.1:80@evil.com",
            "http://evil.com/127.0.0.1",
            "http://evil.com?host=localhost",
            "http://evil.com#127.0.0.1",
            "http://localhost.evil.com",
            "http://localhost.:5000",
            "http://[::1].evil.com",
            "http://[::2]:5000",
            "http://10.0.0.1:5000",
            "http://0.0.0.0:5000",
            "127.0.0.1:5000",
            "localhost",
            "ftp://127.0.0.1",
            "file:///127.0.0.1",
            "http://127.0.0.1\\@evil.com",
            "not a url",
        ] {
            refused(&[("AWS_ENDPOINT_URL", endpoint)]);
        }
    }

    #[test]
    fn every_service_specific_endpoint_must_be_loopback_too() {
        let local = ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
        accepted(&[local, ("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:5001")]);
        accepted(&[local, ("AWS_ENDPOINT_URL_SESV2", "http://[::1]:5002")]);
        for service in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL_STS"] {
            refused(&[local, (service, "https://example.amazonaws.com")]);
            refused(&[local, (service, "http://localhost@evil.com")]);
        }
        refused(&[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:5000")]);
    }

    #[test]
    fn ignoring_configured_endpoints_means_real_aws_and_is_refused() {
        let local = ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
        for value in ["true", "TRUE", "True", "1", "yes"] {
            refused(&[local, ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", value)]);
        }
        accepted(&[local, ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false")]);
    }

    #[test]
    fn a_profile_file_that_could_set_an_endpoint_is_refused() {
        let local = ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000");
        let plain = ProfileFile::new("[default]\nregion = eu-west-1\n");
        accepted(&[local, ("AWS_CONFIG_FILE", plain.path())]);
        accepted(&[local, ("AWS_SHARED_CREDENTIALS_FILE", plain.path())]);
        for text in [
            "[default]\nendpoint_url = https://dynamodb.eu-west-1.amazonaws.com\n",
            "[default]\nservices = real\n[services real]\ndynamodb =\n  endpoint_url = https://x.amazonaws.com\n",
            "[profile other]\nEndpoint_URL = https://x.amazonaws.com\n",
            "[default]\nignore_configured_endpoint_urls = true\n",
        ] {
            let file = ProfileFile::new(text);
            refused(&[local, ("AWS_CONFIG_FILE", file.path())]);
            refused(&[local, ("AWS_SHARED_CREDENTIALS_FILE", file.path())]);
        }
        let home = std::env::temp_dir().join(format!("home-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(home.join(".aws/config"), "[default]\nendpoint_url = https://x.amazonaws.com\n")
            .unwrap();
        let home_dir = home.to_str().unwrap();
        refused(&[local, ("HOME", home_dir)]);
        let tilde = "~/.aws/config";
        refused(&[local, ("HOME", home_dir), ("AWS_CONFIG_FILE", tilde)]);
        std::fs::remove_file(home.join(".aws/config")).unwrap();
        accepted(&[local, ("HOME", home_dir)]);
        let _ = std::fs::remove_dir_all(&home);
    }
}
