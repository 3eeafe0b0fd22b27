//! A routing HTTP/1.1 server on 127.0.0.1 for the ticketing plugins' tests: every request goes
//! to a handler the test writes (a fake PSA keeping its tickets in memory), and is recorded.
//! One request per connection, then close. Tests wait for what the server saw with
//! [`PsaServer::wait_until`], a condition variable, never a sleep. It stops when dropped.

use crate::http_server::{Recorded, read_request};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the handler answers: status, headers, JSON body; `Hangup` closes without an answer
/// (a response lost on the way).
#[derive(Debug, Clone)]
pub enum Answer {
    Json(u16, serde_json::Value),
    Hangup,
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

struct Seen {
    requests: Mutex<Vec<Recorded>>,
    /// Requests read and not yet recorded (their answer may already be out).
    in_flight: Mutex<usize>,
    changed: Condvar,
}

pub struct PsaServer {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How long [`PsaServer::wait_until`] waits before failing the test: far beyond any retry
/// schedule the tests configure, so only a hang reaches it.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

impl PsaServer {
    pub fn start(handler: Handler) -> PsaServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Seen {
            requests: Mutex::new(Vec::new()),
            in_flight: Mutex::new(0),
            changed: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, handler) = (seen.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &handler, &seen));
                }
            })
        };
        PsaServer {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request answered so far, once those being answered are recorded: a call that
    /// returned has its request here (the client can read an answer before the server thread
    /// records it).
    pub fn requests(&self) -> Vec<Recorded> {
        let deadline = std::time::Instant::now() + WAIT_LIMIT;
        while *self.seen.in_flight.lock().expect("in flight") > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.seen.requests.lock().expect("requests").clone()
    }

    /// Block until `done` holds for the requests seen so far (checked at each new request).
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Recorded]) -> bool) {
        let guard = self.seen.requests.lock().expect("requests");
        let (guard, timeout) = self
            .seen
            .changed
            .wait_timeout_while(guard, WAIT_LIMIT, |r| !done(r))
            .expect("requests");
        assert!(
            !timeout.timed_out(),
            "the fake PSA never saw {what}; it saw: {:#?}",
            guard
                .iter()
                .map(|r| format!("{} {}", r.method, r.target))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for PsaServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Seen) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    *seen.in_flight.lock().expect("in flight") += 1;
    let answer = handler(&request);
    if let Answer::Json(status, body) = answer {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let head = format!(
            "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    }
    let _ = writer.flush();
    drop(writer);
    // Recorded after the answer went out: a test that saw the request sees its effect too.
    seen.requests.lock().expect("requests").push(request);
    *seen.in_flight.lock().expect("in flight") -= 1;
    seen.changed.notify_all();
}
