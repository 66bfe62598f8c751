//! Log lines while the dashboard is on the screen: written to stderr they would tear the
//! frame, so they are kept instead (the last [`KEPT`]) and written out when it closes.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Log lines kept while diverted.
pub const KEPT: usize = 200;

static DIVERTED: AtomicBool = AtomicBool::new(false);
static KEPT_LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Keep log lines from now on (`true`), or write the kept ones to stderr and go back to it.
pub fn divert(on: bool) {
    DIVERTED.store(on, Ordering::SeqCst);
    if !on {
        let mut kept = KEPT_LINES.lock().unwrap_or_else(|e| e.into_inner());
        let mut stderr = std::io::stderr();
        for line in kept.drain(..) {
            let _ = stderr.write_all(line.as_bytes());
        }
    }
}

/// The writer of the log: stderr, or the kept lines while diverted.
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !DIVERTED.load(Ordering::Relaxed) {
            return std::io::stderr().write(buf);
        }
        let mut kept = KEPT_LINES.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Writer;

    fn make_writer(&'a self) -> Writer {
        Writer
    }
}
