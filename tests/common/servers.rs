//! Real servers on loopback for the outreach tests: an SMTP server (the SMTP protocol of the
//! `mailin` crate over a TCP listener) and a small HTTP/1.1 listener. Each records what it
//! received; both run on threads of the test process until it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin::{Action, Handler, Response, SessionBuilder};

/// One email as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent: headers and body.
    pub data: String,
}

impl Email {
    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body as text, decoded from its transfer encoding (base64, quoted-printable).
    pub fn body(&self) -> String {
        let raw = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        match encoding.to_ascii_lowercase().as_str() {
            "base64" => {
                use base64::Engine;
                let compact: String = raw.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            }
            "quoted-printable" => quoted_printable(raw),
            _ => raw.to_string(),
        }
        .replace("\r\n", "\n")
    }

    /// The subject, decoded from RFC 2047 encoded words (`=?utf-8?b?…?=`).
    pub fn subject(&self) -> String {
        use base64::Engine;
        let raw = self.header("Subject").unwrap_or_default();
        let words: Vec<String> = (raw.split(' '))
            .map(|w| {
                let inner = w
                    .strip_prefix("=?utf-8?b?")
                    .and_then(|w| w.strip_suffix("?="));
                match inner {
                    Some(b) => String::from_utf8(
                        base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                    )
                    .unwrap(),
                    None => w.to_string(),
                }
            })
            .collect();
        words.join(" ")
    }
}

/// Decode quoted-printable text.
fn quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    let raw = text.replace("=\r\n", "").replace("=\n", "");
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 3 <= b.len()
            && let Ok(v) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            bytes.push(v);
            i += 3;
            continue;
        }
        bytes.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Ports handed out in this process: two tests asking at once could otherwise be given the
/// same free port, and the second server to bind it would fail.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A free loopback port (bound, then let go), never one handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut taken = TAKEN.lock().unwrap();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

/// How the SMTP server answers.
#[derive(Debug, Clone, Default)]
pub enum SmtpMode {
    /// Accept every message (what `start` does).
    #[default]
    Accept,
    /// Greet with this reply line instead of 220 (e.g. "554 5.3.2 No service here") and close
    /// the connection.
    RefuseGreeting(String),
    /// Answer every MAIL FROM with this reply line (e.g. "530 5.7.0 Authentication required").
    RefuseSender(String),
    /// Answer RCPT TO of this address (case-insensitive, without angle brackets) with
    /// "550 5.1.1 No such user"; other recipients are accepted.
    RefuseRecipient(String),
    /// Take the message whole (record it in emails()), then drop the TCP connection without
    /// answering the end of DATA: the client never learns it was stored.
    DropAfterData,
}

/// A reply line ("530 5.7.0 Authentication required") as a mailin response.
fn reply_line(line: &str) -> Response {
    let (code, text) = line.split_once(' ').unwrap_or((line, ""));
    Response::custom(code.parse().expect("an SMTP reply code"), text.to_string())
}

#[derive(Clone)]
struct Collect {
    emails: Arc<Mutex<Vec<Email>>>,
    delay: Duration,
    mode: SmtpMode,
    /// Set when a message has just ended in `DropAfterData` mode: the session loop then hangs
    /// up instead of answering (one flag per connection).
    dropped: Arc<AtomicBool>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collect {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        match &self.mode {
            SmtpMode::RefuseSender(line) => reply_line(line),
            _ => mailin::response::OK,
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let to = to.trim_start_matches('<').trim_end_matches('>');
        match &self.mode {
            SmtpMode::RefuseRecipient(refused) if refused.eq_ignore_ascii_case(to) => {
                reply_line("550 5.1.1 No such user")
            }
            _ => mailin::response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        // A slow server: the message is taken, then acknowledged after the delay (a sender
        // killed in between has it delivered but not marked).
        let email = Email {
            from: self.from.clone(),
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
        };
        self.emails.lock().unwrap().push(email);
        if let SmtpMode::DropAfterData = self.mode {
            // Stored but never acknowledged: the session loop hangs up instead of replying.
            self.dropped.store(true, Ordering::SeqCst);
            return mailin::response::OK;
        }
        std::thread::sleep(self.delay);
        mailin::response::OK
    }
}

/// An SMTP server on loopback.
pub struct SmtpServer {
    pub port: u16,
    pub emails: Arc<Mutex<Vec<Email>>>,
    /// Connections accepted so far (a sender that retries shows up here even when no
    /// message got through).
    connections: Arc<AtomicUsize>,
}

impl SmtpServer {
    /// Listen on `port` (0: any), acknowledging each message after `delay`.
    pub fn start(port: u16, delay: Duration) -> SmtpServer {
        SmtpServer::start_with(port, delay, SmtpMode::Accept)
    }

    /// Listen on `port` (0: any) with `mode`; messages are acknowledged after `delay`.
    pub fn start_with(port: u16, delay: Duration, mode: SmtpMode) -> SmtpServer {
        // A port of its own: never one another test holds for a server it starts later.
        let port = if port == 0 { free_port() } else { port };
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let emails = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler = Collect {
            emails: emails.clone(),
            delay,
            mode,
            dropped: Arc::new(AtomicBool::new(false)),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let accepted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                std::thread::spawn(move || smtp_session(stream, handler));
            }
        });
        SmtpServer {
            port,
            emails,
            connections,
        }
    }

    /// How many connections the server has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn emails(&self) -> Vec<Email> {
        self.emails.lock().unwrap().clone()
    }
}

fn smtp_session(stream: TcpStream, mut handler: Collect) {
    let peer: IpAddr = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let mut writer = stream.try_clone().unwrap();
    if let SmtpMode::RefuseGreeting(line) = &handler.mode {
        let _ = writer.write_all(format!("{line}\r\n").as_bytes());
        let _ = writer.shutdown(Shutdown::Both);
        return;
    }
    // A fresh flag for this connection (the handler's clone would share the listener's).
    let dropped = Arc::new(AtomicBool::new(false));
    handler.dropped = dropped.clone();
    let mut reader = BufReader::new(stream);
    let mut session = SessionBuilder::new("arstream-test-smtp").build(peer, handler);
    if session.greeting().write_to(&mut writer).is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        if dropped.load(Ordering::SeqCst) {
            // DropAfterData: the message is stored; hang up instead of acknowledging it.
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        match response.action {
            Action::Reply => {
                if response.write_to(&mut writer).is_err() {
                    return;
                }
            }
            Action::Close => {
                let _ = response.write_to(&mut writer);
                return;
            }
            Action::NoReply => {}
            Action::UpgradeTls => return,
        }
    }
}

/// One HTTP request as the listener received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When it was received.
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the HTTP listener answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and a 2-byte body "ok" (what `start(status)` does).
    Status(u16),
    /// This status with a `Location` header (a redirect, e.g. 302 to another URL) and an
    /// empty body.
    Redirect(u16, String),
    /// This status (e.g. 503 or 429) with `Retry-After: <seconds>` and an empty body.
    RetryAfter(u16, u64),
    /// This status with a body of this many bytes ('x'), written in 64 KiB chunks until written
    /// whole or the client hangs up; the bytes actually written are counted (see
    /// `body_bytes_written`).
    BigBody(u16, u64),
    /// Read the request, record it, never answer (hold the connection open for up to 10
    /// minutes, then close).
    Hang,
}

/// Chooses the reply to the n-th request (0-based, over the whole server).
type Replier = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A small HTTP/1.1 listener on loopback that answers each request as its `Replier` says.
pub struct HttpServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Bytes of `BigBody` bodies actually written: how much a client read before giving up.
    body_bytes: Arc<AtomicU64>,
}

/// What the connections of one listener share.
struct HttpShared {
    reply: Box<Replier>,
    /// Requests seen so far, in arrival order over all connections.
    seen: Arc<Mutex<Vec<Request>>>,
    body_bytes: Arc<AtomicU64>,
}

impl HttpServer {
    /// Answer every request with `status` and the body "ok".
    pub fn start(status: u16) -> HttpServer {
        HttpServer::start_with(move |_, _| Reply::Status(status))
    }

    /// Answer the n-th request (0-based, counted over the whole server) with
    /// `reply(&request, n)`.
    pub fn start_with(
        reply: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind(("127.0.0.1", free_port())).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(HttpShared {
            reply: Box::new(reply),
            seen: requests.clone(),
            body_bytes: body_bytes.clone(),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || http_connection(stream, &shared));
            }
        });
        HttpServer {
            port,
            requests,
            body_bytes,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Bytes of BigBody bodies actually written (the client may hang up early).
    pub fn body_bytes_written(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

fn http_connection(stream: TcpStream, shared: &HttpShared) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Requests on one connection, one after another (keep-alive), until it closes.
    for _ in 0..10_000 {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let length: usize = (headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: std::time::Instant::now(),
        };
        // Record first, then choose: the count is over the whole server, and a test sees the
        // request even when the reply never comes.
        let n = {
            let mut seen = shared.seen.lock().unwrap();
            seen.push(request.clone());
            seen.len() - 1
        };
        let reply = (shared.reply)(&request, n);
        let head = match &reply {
            Reply::Status(status) => format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok"),
            Reply::Redirect(status, location) => {
                format!("HTTP/1.1 {status} X\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            }
            Reply::RetryAfter(status, seconds) => {
                format!(
                    "HTTP/1.1 {status} X\r\nRetry-After: {seconds}\r\nContent-Length: 0\r\n\r\n"
                )
            }
            Reply::BigBody(status, size) => {
                format!("HTTP/1.1 {status} X\r\nContent-Length: {size}\r\n\r\n")
            }
            Reply::Hang => {
                hang(&mut reader);
                return;
            }
        };
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        if let Reply::BigBody(_, size) = reply {
            big_body(&mut writer, size, &shared.body_bytes);
            // Closed after a big body: a client that stopped reading leaves nothing to resume.
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Write `size` bytes of 'x' in 64 KiB chunks, counting what the socket took, until done or
/// the client hangs up.
fn big_body(writer: &mut TcpStream, size: u64, written: &AtomicU64) {
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let part = &chunk[..left.min(chunk.len() as u64) as usize];
        match writer.write(part) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                written.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
        }
    }
}

/// Hold the connection without answering, for at most 10 minutes; stop early when the client
/// hangs up (nothing more to read), so a finished test frees the thread.
fn hang(reader: &mut BufReader<TcpStream>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut buf = [0; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || reader.get_ref().set_read_timeout(Some(left)).is_err() {
            break;
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = reader.get_ref().shutdown(Shutdown::Both);
}
