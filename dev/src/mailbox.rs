//! The emulator's outbox: every email the functions "sent", as moto keeps them.

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct SentMail {
    pub id: String,
    pub source: String,
    pub destinations: Destinations,
    pub subject: String,
    /// The HTML part when there is one (moto keeps only one part).
    pub body: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destinations {
    #[serde(default)]
    pub to_addresses: Vec<String>,
}

impl SentMail {
    pub fn is_to(&self, address: &str) -> bool {
        self.destinations.to_addresses.iter().any(|a| a.eq_ignore_ascii_case(address))
    }

    /// The body with tags removed and entities decoded: good enough to read in a terminal.
    pub fn plain_text(&self) -> String {
        let body = match (self.body.find("<head"), self.body.find("</head>")) {
            (Some(start), Some(end)) => format!("{}{}", &self.body[..start], &self.body[end..]),
            _ => self.body.clone(),
        };
        let body = body
            .replace("<br>", "\n")
            .replace("</p>", "</p>\n")
            .replace("</th>", "</th>: ")
            .replace("</tr>", "</tr>\n");
        let mut out = String::new();
        let mut in_tag = false;
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        let decoded = out
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'");
        decoded.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
    }

    /// Every `href` in the body, entities decoded.
    pub fn links(&self) -> Vec<String> {
        self.body
            .split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|href| href.replace("&amp;", "&"))
            .collect()
    }

    /// (request id, token) of each verification link: `…/verify#request_id=…&token=…`.
    pub fn verification_links(&self) -> Vec<(String, String)> {
        self.links()
            .iter()
            .filter_map(|link| {
                let fragment = link.split_once('#')?.1;
                let field = |name: &str| {
                    fragment
                        .split('&')
                        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
                };
                Some((field("request_id")?, field("token")?))
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct MotoData {
    #[serde(default)]
    ses: MotoSes,
}

#[derive(Default, Deserialize)]
struct MotoSes {
    #[serde(rename = "Message", default)]
    message: Vec<SentMail>,
}

/// All mail the emulator at `endpoint` has accepted, oldest first.
pub async fn fetch(endpoint: &str) -> Result<Vec<SentMail>> {
    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    let data: MotoData = reqwest::get(&url)
        .await
        .with_context(|| format!("reading {url}"))?
        .error_for_status()?
        .json()
        .await
        .context("decoding the emulator's data.json")?;
    Ok(data.ses.message)
}

/// The mail the emulator at `endpoint` has accepted for one address, oldest first: the emulator's
/// own filtered list (dev/emulator.py), which costs the same however much other mail it holds.
pub async fn fetch_to(endpoint: &str, address: &str) -> Result<Vec<SentMail>> {
    fetch_to_with(&reqwest::Client::new(), endpoint, address).await
}

/// [`fetch_to`] through a client of the caller's, so a poller reuses its connections.
pub async fn fetch_to_with(client: &reqwest::Client, endpoint: &str, address: &str) -> Result<Vec<SentMail>> {
    get_mail(client, endpoint, &[("to", address)]).await
}

/// [`fetch_to_with`], answered once the address has more than `seen` messages or after `wait`
/// (at most 20 s): a reader waiting for its next mail asks once, not ten times a second.
pub async fn fetch_more_to(
    client: &reqwest::Client,
    endpoint: &str,
    address: &str,
    seen: usize,
    wait: std::time::Duration,
) -> Result<Vec<SentMail>> {
    let (seen, wait) = (seen.to_string(), format!("{:.3}", wait.as_secs_f64().min(20.0)));
    get_mail(client, endpoint, &[("to", address), ("more_than", &seen), ("wait", &wait)]).await
}

/// The first mail to `address` that `wanted` accepts, waiting for new mail (long polls of at most
/// 10 s) until `patience` has passed since `started`.
pub async fn wait_for_mail(
    client: &reqwest::Client,
    endpoint: &str,
    address: &str,
    started: std::time::Instant,
    patience: std::time::Duration,
    wanted: impl Fn(&SentMail) -> bool,
) -> Result<SentMail> {
    const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let mut seen = 0;
    loop {
        let left = patience.saturating_sub(started.elapsed());
        let mail = fetch_more_to(client, endpoint, address, seen, left.min(LONGEST_WAIT)).await?;
        seen = mail.len();
        if let Some(mail) = mail.into_iter().find(|m| wanted(m)) {
            return Ok(mail);
        }
        if started.elapsed() > patience {
            anyhow::bail!("no mail came within {} s", patience.as_secs());
        }
    }
}

async fn get_mail(client: &reqwest::Client, endpoint: &str, query: &[(&str, &str)]) -> Result<Vec<SentMail>> {
    let url = format!("{}/_local/mail", endpoint.trim_end_matches('/'));
    client
        .get(&url)
        .query(query)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?
        .error_for_status()?
        .json()
        .await
        .context("decoding the emulator's mail list")
}
