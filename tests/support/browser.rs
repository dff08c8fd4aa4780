//! One real headless Chromium per test (Debian's chromium and chromium-driver, which
//! `dev/bin/ensure-browser` installs; nothing here downloads a browser), driven through its own
//! chromedriver with a fresh profile: the harness every page test uses.
//!
//! Besides driving a page it checks one: [`Browser::axe`] runs axe-core (from npm, in
//! `dev/browser`) at WCAG 2.1 AA in the page as the person sees it, [`Browser::screenshot`] keeps
//! a picture of the whole page under `target/pages/` for review, and the keyboard helpers walk a
//! page as a keyboard-only visitor does. [`Options`] opens the browser with a preferred language,
//! without JavaScript, or sending the Global Privacy Control signal.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_http::http::Method;
use reqwest::Url;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Long enough for a cold browser on a busy machine; a page that never renders still fails.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
/// The window a page is laid out in (and its screenshots are as wide as).
const WINDOW: (u32, u32) = (1024, 768);
/// What axe checks: WCAG 2.0 and 2.1, levels A and AA.
const WCAG_21_AA: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// The workspace's root (this crate is `tests/` in it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// How the browser is set up, like a visitor's own settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// `Accept-Language` and `navigator.languages`, e.g. `nl-NL,nl`.
    pub languages: String,
    pub javascript: bool,
    /// Global Privacy Control: `Sec-GPC: 1` on every request, `navigator.globalPrivacyControl`.
    pub global_privacy_control: bool,
    /// Where downloads are saved, without asking.
    pub downloads: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            languages: "en-US,en".to_owned(),
            javascript: true,
            global_privacy_control: false,
            downloads: None,
        }
    }
}

impl Options {
    /// Preferring these languages, most preferred first (`nl-NL,nl`).
    pub fn preferring(languages: &str) -> Options {
        Options { languages: languages.to_owned(), ..Options::default() }
    }

    pub fn without_javascript(self) -> Options {
        Options { javascript: false, ..self }
    }

    pub fn with_global_privacy_control(self) -> Options {
        Options { global_privacy_control: true, ..self }
    }

    /// Downloads saved into `dir` without a prompt (headless Chromium saves none unless told).
    pub fn saving_downloads_in(self, dir: PathBuf) -> Options {
        Options { downloads: Some(dir), ..self }
    }
}

/// A chromedriver this test started, and the profile of the Chromium it drives. Dropping it ends
/// both (they run in their own process group) and removes the profile, also when a test fails
/// halfway.
struct Driver {
    process: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.process.id())]).status();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One axe-core finding: a rule the page breaks, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    /// The CSS selectors of the offending elements.
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {} at {}", self.id, self.impact, self.help, self.targets.join(", "))
    }
}

/// A Chrome DevTools Protocol command through chromedriver's passthrough
/// (`POST /session/{id}/goog/cdp/execute`): what WebDriver has no command for.
#[derive(Debug)]
struct Cdp {
    method: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &Url,
        session_id: Option<&str>,
    ) -> Result<Url, <Url as std::str::FromStr>::Err> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"cmd": self.method, "params": self.params}).to_string()))
    }
}

/// One headless Chromium behind its own chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    url: String,
    javascript: bool,
    _driver: Driver,
}

impl Browser {
    pub async fn open(options: Options) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run dev/bin/ensure-browser (the pages are tested in a real browser)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that dropping the driver also ends the Chromium it starts.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let profile = std::env::temp_dir().join(format!("browser-profile-{}", uuid::Uuid::new_v4().simple()));
        let driver = Driver { process, profile };
        std::fs::create_dir_all(&driver.profile).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        ready(&url).await;

        let first = options.languages.split(',').next().unwrap_or("en-US").trim().to_owned();
        let mut prefs = json!({"intl.accept_languages": options.languages});
        if !options.javascript {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        if let Some(dir) = &options.downloads {
            prefs["download.default_directory"] = json!(dir.display().to_string());
            prefs["download.prompt_for_download"] = json!(false);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", driver.profile.display()),
                    format!("--lang={first}"), format!("--accept-lang={}", options.languages),
                ],
                "prefs": prefs,
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver does not start Chromium: {e}"));
        let browser = Browser { client, url, javascript: options.javascript, _driver: driver };
        if let Some(dir) = &options.downloads {
            // Headless Chromium saves nothing unless told where.
            let dir = dir.display().to_string();
            browser
                .cdp("Browser.setDownloadBehavior", json!({"behavior": "allow", "downloadPath": dir}))
                .await;
        }
        if options.global_privacy_control {
            // Chromium has no switch for it: the header on every request of this tab, and the
            // property in every document before its own scripts run.
            browser.cdp("Network.enable", json!({})).await;
            browser.cdp("Network.setExtraHTTPHeaders", json!({"headers": {"Sec-GPC": "1"}})).await;
            let source = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', \
                          {get: () => true, configurable: true, enumerable: true});";
            browser.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": source})).await;
        }
        browser
    }

    /// Sends a DevTools command to the current tab; returns its result.
    pub async fn cdp(&self, method: &'static str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp { method, params })
            .await
            .unwrap_or_else(|e| panic!("chromedriver refused the DevTools command {method}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits until `css` matches an element; returns its text once it is shown. An element the
    /// page replaced between finding and reading it (a navigation still under way: found on the
    /// page being left) is looked for again, on the page that replaced it.
    pub async fn shown(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let element = match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
                Ok(element) => element,
                Err(e) => panic!("{css} never appeared ({e}); the page says: {}", self.text("body").await),
            };
            let read = async {
                Ok::<_, fantoccini::error::CmdError>((element.is_displayed().await?, element.text().await?))
            };
            match read.await {
                Ok((displayed, text)) => {
                    assert!(displayed, "{css} is in the page but not shown");
                    return text;
                }
                Err(e) if e.is_stale_element_reference() && std::time::Instant::now() < deadline => continue,
                Err(e) => panic!("{css} could not be read: {e}"),
            }
        }
    }

    /// The text of the first element matching `css`; empty when there is none.
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn is_displayed(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.unwrap().is_displayed().await.unwrap()
    }

    /// Runs `js` in the page (WebDriver's script execution, which the page's own Content
    /// Security Policy does not govern); returns what it returns.
    pub async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.unwrap()
    }

    /// Keys pressed on the keyboard, wherever the focus is (no element is addressed).
    pub async fn press(&self, keys: &[Key]) {
        let mut typing = KeyActions::new("keyboard".to_owned());
        for key in keys {
            typing = typing
                .then(KeyAction::Down { value: (*key).into() })
                .then(KeyAction::Up { value: (*key).into() });
        }
        self.client.perform_actions(typing).await.unwrap();
    }

    pub async fn press_enter(&self) {
        self.press(&[Key::Enter]).await;
    }

    pub async fn press_space(&self) {
        let space = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: ' ' })
            .then(KeyAction::Up { value: ' ' });
        self.client.perform_actions(space).await.unwrap();
    }

    /// Presses Tab until the focused element matches `css`, at most `limit` times; returns how
    /// many presses it took. Panics naming where the focus went instead.
    pub async fn tab_to(&self, css: &str, limit: usize) -> usize {
        let mut visited = Vec::new();
        for presses in 1..=limit {
            self.press(&[Key::Tab]).await;
            let focused = self
                .client
                .execute(
                    "const e = document.activeElement; \
                     return [!!e && e.matches(arguments[0]), e ? e.outerHTML.slice(0, 80) : 'nothing'];",
                    vec![json!(css)],
                )
                .await
                .unwrap();
            if focused[0] == json!(true) {
                return presses;
            }
            visited.push(focused[1].as_str().unwrap_or_default().to_owned());
        }
        panic!("{limit} presses of Tab never reached {css}; the focus went to: {visited:#?}");
    }

    /// Whether the focused element shows it has the focus: an outline or a box shadow that is
    /// drawn (not `none`, not 0 wide, not transparent).
    pub async fn focus_is_visible(&self) -> bool {
        let drawn = self
            .script(
                "const e = document.activeElement; \
                 if (!e || e === document.body) { return false; } \
                 const s = getComputedStyle(e); \
                 const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 \
                     && s.outlineColor !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(s.outlineColor); \
                 const shadow = s.boxShadow !== 'none' && s.boxShadow !== ''; \
                 return outline || shadow;",
            )
            .await;
        drawn == json!(true)
    }

    /// A PNG of the whole page (not only the window), at `target/pages/<name>.png` of the
    /// workspace; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = workspace_root().join("target").join("pages");
        std::fs::create_dir_all(&dir).unwrap();
        let height = self
            .script("return Math.ceil(Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0))")
            .await
            .as_u64()
            .unwrap_or(u64::from(WINDOW.1));
        // The window grows to the page's height for the picture, then goes back: resizing keeps
        // the focus and the page's state, so a test goes on as before.
        let wanted = u32::try_from(height).unwrap_or(u32::MAX).clamp(WINDOW.1, 16_000);
        // The window is taller than what it shows of the page by the browser's own frame.
        self.client.set_window_size(WINDOW.0, wanted).await.unwrap();
        let shown = self.script("return window.innerHeight").await.as_u64().unwrap_or(u64::from(wanted));
        let frame = u64::from(wanted).saturating_sub(shown);
        if frame > 0 {
            let tall = u32::try_from(u64::from(wanted) + frame).unwrap_or(u32::MAX);
            self.client.set_window_size(WINDOW.0, tall).await.unwrap();
        }
        let png = self.client.screenshot().await.unwrap();
        self.client.set_window_size(WINDOW.0, WINDOW.1).await.unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs axe-core in the page as it is now, at WCAG 2.1 AA; returns what it found.
    pub async fn axe(&self) -> Vec<Violation> {
        let source = workspace_root().join("dev/browser/node_modules/axe-core/axe.min.js");
        let loaded = self.script("return typeof window.axe === 'object'").await;
        if loaded != json!(true) {
            let axe = std::fs::read_to_string(&source).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}): run dev/bin/ensure-browser (it installs axe-core)",
                    source.display()
                )
            });
            self.script(&axe).await;
        }
        if !self.javascript {
            // With JavaScript off, scripts the harness runs still run, but the page's timers
            // never fire, and axe-core waits on them between its checks: here they run as soon as
            // the current check is done instead (the page's own scripts never ran, so nothing
            // else is waiting on them).
            self.script(
                "window.setTimeout = function (f) { \
                   var rest = Array.prototype.slice.call(arguments, 2); \
                   Promise.resolve().then(function () { f.apply(null, rest); }); return 0; }; \
                 window.clearTimeout = function () {};",
            )
            .await;
        }
        let answer = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 window.axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']}) \
                   .then(r => done({violations: r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help, \
                         targets: v.nodes.map(n => n.target.join(' '))}))})) \
                   .catch(e => done({error: String(e)}));",
                vec![json!(WCAG_21_AA)],
            )
            .await
            .unwrap_or_else(|e| panic!("axe-core did not answer: {e}"));
        if let Some(error) = answer.get("error") {
            panic!("axe-core failed in the page: {error}");
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        answer["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("axe-core answered {answer}"))
            .iter()
            .map(|v| Violation {
                id: text(&v["id"]),
                impact: text(&v["impact"]),
                help: text(&v["help"]),
                targets: v["targets"].as_array().map(|t| t.iter().map(text).collect()).unwrap_or_default(),
            })
            .collect()
    }

    /// Keeps a screenshot of the page as `name` and fails, naming each rule broken and where,
    /// when axe-core finds anything at WCAG 2.1 AA.
    pub async fn assert_accessible(&self, name: &str) {
        let picture = self.screenshot(name).await;
        let violations = self.axe().await;
        assert!(
            violations.is_empty(),
            "{name} breaks WCAG 2.1 AA ({}):\n{}",
            picture.display(),
            violations.iter().map(|v| format!("- {v}")).collect::<Vec<_>>().join("\n")
        );
    }

    /// What reached the console, Chromium's own reports (CSP violations) included.
    pub async fn console(&self) -> Vec<Value> {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a log as JSON");
        answer["value"].as_array().cloned().unwrap_or_else(|| panic!("no browser log: {answer}"))
    }

    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Waits for a just-started chromedriver to take sessions.
async fn ready(url: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = reqwest::get(format!("{url}/status")).await.ok();
        if let Some(answer) = status {
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if body["value"]["ready"] == json!(true) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start on {url}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The harness's own promises, against a tiny page that says what its request carried.
mod proof {
    use super::*;
    use crate::support::http::serve;
    use lambda_http::{Body, Response};

    /// A page saying which `Accept-Language` and `Sec-GPC` reached the server, with a script
    /// that marks the page when scripts run.
    async fn echo() -> crate::support::http::Served {
        serve(|request: lambda_http::Request| async move {
            let header = |name: &str| {
                request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned()
            };
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><title>Echo</title></head><body><main>\
                 <p id=\"gpc\">{}</p><p id=\"languages\">{}</p><p id=\"script\">off</p>\
                 <script>document.getElementById('script').textContent = 'on';</script></main></body></html>",
                header("sec-gpc"),
                header("accept-language")
            );
            let mut response = Response::new(Body::Text(html));
            response.headers_mut().insert("content-type", "text/html; charset=utf-8".parse().unwrap());
            response
        })
        .await
    }

    #[tokio::test]
    async fn browser_with_global_privacy_control_sends_sec_gpc_and_tells_its_pages() {
        let served = echo().await;
        let browser = Browser::open(Options::default().with_global_privacy_control()).await;
        browser.goto(&format!("{}/first", served.base)).await;
        assert_eq!(browser.text("#gpc").await, "1");
        assert_eq!(browser.script("return navigator.globalPrivacyControl").await, json!(true));
        // Every request of the tab, not only the first.
        browser.goto(&format!("{}/second", served.base)).await;
        assert_eq!(browser.text("#gpc").await, "1");
        assert_eq!(browser.script("return navigator.globalPrivacyControl === true").await, json!(true));
        browser.quit().await;

        let plain = Browser::open(Options::default()).await;
        plain.goto(&format!("{}/plain", served.base)).await;
        assert_eq!(plain.text("#gpc").await, "none");
        assert_ne!(plain.script("return navigator.globalPrivacyControl").await, json!(true));
        plain.quit().await;
    }

    #[tokio::test]
    async fn browser_prefers_the_languages_it_is_opened_with_and_can_run_without_javascript() {
        let served = echo().await;
        let browser = Browser::open(Options::preferring("nl-NL,nl").without_javascript()).await;
        browser.goto(&format!("{}/", served.base)).await;
        assert!(
            browser.text("#languages").await.starts_with("nl-NL"),
            "{}",
            browser.text("#languages").await
        );
        assert_eq!(browser.text("#script").await, "off", "the page's own script did not run");
        // The harness's scripts still run: axe-core checks pages without JavaScript too.
        assert_eq!(browser.script("return 1 + 1").await, json!(2));
        browser.quit().await;

        let scripted = Browser::open(Options::default()).await;
        scripted.goto(&format!("{}/", served.base)).await;
        assert_eq!(scripted.text("#script").await, "on");
        assert!(scripted.text("#languages").await.starts_with("en-US"));
        scripted.quit().await;
    }

    #[tokio::test]
    async fn browser_axe_finds_what_breaks_wcag_and_screenshots_the_whole_page() {
        let served = serve(|_| async {
            // No `lang`, an unlabelled field, grey on grey, and a page taller than the window.
            let html = "<!doctype html><html><head><title>Broken</title></head><body><main>\
                        <input id=\"nameless\"><p style=\"color:#bbb;background:#ccc\">faint</p>\
                        <div style=\"height:2500px\"></div></main></body></html>";
            let mut response = Response::new(Body::Text(html.to_owned()));
            response.headers_mut().insert("content-type", "text/html".parse().unwrap());
            response
        })
        .await;
        let browser = Browser::open(Options::default()).await;
        browser.goto(&served.base).await;
        let found: Vec<String> = browser.axe().await.into_iter().map(|v| v.id).collect();
        for rule in ["html-has-lang", "label", "color-contrast"] {
            assert!(found.contains(&rule.to_owned()), "{rule} not found in {found:?}");
        }
        let picture = browser.screenshot("harness-broken").await;
        let png = std::fs::read(&picture).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert!(height >= 2500, "the whole page, not the window: {height}px");
        browser.quit().await;
    }
}
