//! Scraping a `/metrics` endpoint over a plain socket, as Prometheus would, and reading the
//! OpenMetrics text back strictly: every line must be a `# HELP`, `# TYPE`, `# UNIT` line or a
//! sample `name{label="value",...} number`, and the text must end with `# EOF`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP answer: status code, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` on `addr` (HTTP/1.1, one request per connection).
pub fn ask(addr: &str, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("answer read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Samples by their series (`name{labels}` as written), after checking every line's format.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the text ends with # EOF:\n{text}"
    );
    let mut samples = BTreeMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&keyword) && is_name(name),
                "bad metadata line {line:?}"
            );
            if keyword == "TYPE" {
                let kind = parts.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "info", "unknown"].contains(&kind),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample is `series value`: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(is_name(&series[..name_end]), "bad name in {line:?}");
        if name_end < series.len() {
            let labels = series[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for label in split_labels(labels) {
                let (key, quoted) = label
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {label:?} in {line:?}"));
                assert!(is_name(key), "bad label name in {line:?}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "label values are quoted: {line:?}"
                );
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series {series} appears twice"
        );
    }
    samples
}

/// `a="x",b="y,z"` into its labels (commas inside quotes kept).
fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Scrape `http://addr/metrics`: 200, the OpenMetrics type, and parsed samples.
pub fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let answer = ask(addr, "GET", "/metrics");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        answer.headers
    );
    parse(&answer.body)
}

/// The value of `series` (0 when absent: a labelled counter appears at its first increment).
pub fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Anything but `GET /metrics` serves no metrics: 404 for another path, 405 for another method.
pub fn assert_nothing_else_is_served(addr: &str) {
    for path in ["/", "/metrics/", "/debug/pprof", "/metricsx"] {
        let answer = ask(addr, "GET", path);
        assert_eq!(answer.status, 404, "GET {path}: {}", answer.body);
        assert!(
            !answer.body.contains("warden_"),
            "GET {path}: {}",
            answer.body
        );
    }
    let posted = ask(addr, "POST", "/metrics");
    assert_eq!(posted.status, 405, "{}", posted.body);
    assert!(!posted.body.contains("warden_"), "{}", posted.body);
}
