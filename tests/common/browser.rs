//! Driving headless Chromium over WebDriver (chromedriver) for the console's browser tests:
//! Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/install-test-deps`
//! installs them; `CALLHOOK_CHROMIUM` / `CALLHOOK_CHROMEDRIVER` point elsewhere), and the steps
//! the tests take on a page.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::process_group::ProcessGroup;

pub fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run scripts/install-test-deps (Debian's chromium and chromium-driver) or set {var}"
    );
    path
}

/// chromedriver on a free loopback port; it and the Chromium it starts are stopped when
/// dropped.
pub struct Driver {
    _process: ProcessGroup,
    pub url: String,
}

pub async fn start_driver() -> Driver {
    let path = binary("CALLHOOK_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let driver = Driver {
        _process: ProcessGroup::spawn(
            Command::new(path)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver starts"),
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready when its status endpoint answers.
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
            if r.status().is_success() {
                return driver;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

pub async fn browser(driver: &Driver) -> Client {
    let chromium = binary("CALLHOOK_CHROMIUM", "/usr/bin/chromium");
    // reqwest brings rustls with ring, the WebDriver client with aws-lc-rs; name one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = tempfile::tempdir().expect("profile dir").keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    ClientBuilder::rustls()
        .expect("tls roots")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

pub fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG for {name}");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

pub async fn fill(c: &Client, id: &str, text: &str) {
    let input = c.find(Locator::Id(id)).await.expect(id);
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Clicks a link or submit button and waits for the next page: the old document is marked
/// first, so what is read afterwards can only come from the new one.
pub async fn click(c: &Client, id: &str) {
    follow(c, Locator::Id(id)).await;
}

pub async fn follow(c: &Client, target: Locator<'_>) {
    c.execute(
        "document.documentElement.setAttribute('data-left', '1')",
        vec![],
    )
    .await
    .expect("mark the page");
    c.find(target)
        .await
        .unwrap_or_else(|e| panic!("{target:?}: {e}"))
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("html:not([data-left])"))
        .await
        .expect("the next page loads");
}

pub async fn text_of(c: &Client, css: &str) -> String {
    let found = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(e) => e.text().await.expect("text"),
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let source = c.source().await.unwrap_or_default();
            panic!("`{css}` not on {url}: {e}\n{source}");
        }
    }
}

/// Reloads `url` until `css` shows `want` (the server works asynchronously; the page is the
/// thing observed).
pub async fn reload_until(c: &Client, url: &str, css: &str, want: &str) {
    for _ in 0..100 {
        c.goto(url).await.expect("goto");
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.unwrap_or_default().contains(want) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}: `{css}` never showed `{want}`");
}

/// Scrolls the element `id` into view for a screenshot.
pub async fn show(c: &Client, id: &str) {
    c.execute(
        "document.getElementById(arguments[0]).scrollIntoView();",
        vec![json!(id)],
    )
    .await
    .expect("scroll");
}

/// Waits until the element `css` shows `want` (the preview is fetched as the user types).
pub async fn wait_for_text(c: &Client, css: &str, want: &str) -> String {
    let mut seen = String::new();
    for _ in 0..200 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            seen = e.text().await.unwrap_or_default();
            if seen.contains(want) {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{css}` never showed `{want}`; it shows {seen:?}");
}
