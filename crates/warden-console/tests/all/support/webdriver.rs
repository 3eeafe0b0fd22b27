//! A WebDriver client for chromedriver driving headless Chromium (the Debian packages that
//! `cargo xtask chromium` installs): the few commands these tests need, as JSON over HTTP
//! (W3C WebDriver). chromedriver and its Chromium run in their own process group, killed when
//! the [`Browser`] is dropped, a failed test included.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C's key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Bound on every wait for the page.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.driver.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn call(port: u16, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, format!("127.0.0.1:{port}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&bytes)?;
    if !status.is_success() {
        anyhow::bail!("webdriver {path}: {status}: {}", v["value"]["message"]);
    }
    Ok(v["value"].clone())
}

impl Browser {
    /// chromedriver on a free port and a new headless Chromium session with a fresh profile.
    pub async fn start() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "headless Chromium is missing: run `cargo xtask chromium` (apt-get install chromium chromium-driver)"
        );
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let deadline = Instant::now() + WAIT;
        while call(port, Method::GET, "/status", None).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        } } });
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let s = call(port, Method::POST, "/session", Some(caps))
            .await
            .expect("a Chromium session");
        b.session = s["sessionId"].as_str().expect("session id").to_string();
        b
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        call(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .expect("navigates");
    }

    pub async fn url(&self) -> String {
        self.cmd(Method::GET, "/url", None)
            .await
            .expect("url")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element `css` selects, if any now.
    pub async fn try_find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The element `css` selects, waiting for it to appear.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                let source = self.cmd(Method::GET, "/source", None).await;
                panic!("no element {css} on {}: {source:?}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, css: &str) -> usize {
        self.cmd(
            Method::POST,
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await
        .expect("elements")
        .as_array()
        .map_or(0, Vec::len)
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(Method::GET, &format!("/element/{e}/text"), None)
            .await
            .expect("text")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the text of `css` satisfies `f`; that text.
    pub async fn wait_text(&self, css: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // The live table is replaced under the reader now and then: a stale element is
            // read again on the next pass.
            let t = match self.try_find(css).await {
                Some(e) => self
                    .cmd(Method::GET, &format!("/element/{e}/text"), None)
                    .await
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                None => String::new(),
            };
            if f(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never matched; last text {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await
        .expect("clears");
        self.cmd(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .expect("types");
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await
        .expect("clicks");
    }

    /// Run `script` (a function body) in the page; its return value.
    pub async fn eval(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .expect("script runs")
    }

    /// Run `script` with a callback as its last argument; what it passed to the callback.
    pub async fn eval_async(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .expect("script runs")
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let b64 = self
            .cmd(Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        data_encoding::BASE64
            .decode(b64.as_str().unwrap_or_default().as_bytes())
            .expect("base64 png")
    }

    /// Sign in at `base` with `token` through the form.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/signin")).await;
        self.type_into("#token", token).await;
        self.click("#signin").await;
        self.find("#fleet").await;
    }

    /// End the session (Chromium exits); the process group goes on drop.
    pub async fn quit(self) {
        let _ = self.cmd(Method::DELETE, "", None).await;
    }
}
