//! The live terminal dashboard: KPI tiles, aging, DSO trend, risk segments, the worklist, the
//! cash forecast, outreach and feed health, laid out by `dashboards/*.toml`.
//!
//! It is a subscriber of the service's snapshots, in three parts that never wait on each
//! other: a worker turns each snapshot into a prepared [`board::Board`] (the queries run
//! there, [`prepare`]), an input thread reads keys and the mouse, and the loop here redraws
//! whenever either hands something over. A frame reads only prepared rows, so it never waits
//! on a query or on I/O, and the first frame is on the screen before the state is loaded.

pub mod app;
pub mod board;
pub mod draw;
pub mod form;
pub mod layout;
pub mod logs;
pub mod prepare;
pub mod theme;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::execute;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::actions::Action;
use app::{App, Ask};
use board::{Board, Detail};
use layout::Layout;
use prepare::{Phase, Preparer};

use crate::service::consumer::{self, Consumer, Next};
use crate::service::{Notice, Snapshot, Snapshots};

/// What the worker hands the loop.
enum Update {
    Board(Board),
    Detail(Detail),
    /// What recording a form's action came to (its summary, or why not).
    Recorded(Result<String, String>),
}

/// Where the dashboard writes what collectors record (the actions feed), and who they are
/// (`--as`; none: the forms say how to tell).
#[derive(Debug, Clone)]
pub struct Recorder {
    pub who: Option<String>,
    pub to: crate::store::Location,
}

/// Show the dashboard until `q` (or `cancel`): `snapshots` are the runner's, `notices` its
/// failures; `ledger` is the outreach ledger's folder, when the pipeline has a policy.
///
/// The screen has a thread of its own, so that no work of the runner or of the worker (both on
/// the caller's runtime) ever delays a frame or a key.
pub async fn show(
    layout: Layout,
    snapshots: Snapshots,
    notices: tokio::sync::broadcast::Receiver<Notice>,
    ledger: Option<PathBuf>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (updates_tx, updates) = mpsc::unbounded_channel();
    let (asks_tx, asks) = mpsc::unbounded_channel();
    let preparer = Preparer::new(layout.clone(), ledger.clone());
    let boards = Boards {
        preparer,
        board: Board::default(),
        updates: updates_tx.clone(),
    };
    let stop_workers = cancel.child_token();
    let worker = consumer::spawn(boards, snapshots.clone(), stop_workers.clone(), |()| {});
    let who = recorder.who.clone();
    let answers = tokio::spawn(answer(ledger, snapshots, asks, updates_tx, recorder));
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let screen = Screen {
        layout,
        who,
        updates,
        asks: asks_tx,
        notices,
        cancel,
    };
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            let result = match runtime {
                Ok(runtime) => runtime.block_on(screen.run()),
                Err(e) => Err(e),
            };
            let _ = done_tx.send(result);
        })?;
    let result = done.await.unwrap_or(Ok(()));
    stop_workers.cancel();
    worker.abort();
    answers.abort();
    result
}

/// The screen's side: what it draws from and where it sends drill-downs.
struct Screen {
    layout: Layout,
    who: Option<String>,
    updates: mpsc::UnboundedReceiver<Update>,
    asks: mpsc::UnboundedSender<Ask>,
    notices: tokio::sync::broadcast::Receiver<Notice>,
    cancel: CancellationToken,
}

impl Screen {
    /// Draw, then wait for a key, an update or a notice, until `q` or the cancel.
    async fn run(mut self) -> std::io::Result<()> {
        // A frame goes to the terminal in one write (stdout alone would write it a kilobyte
        // at a time); a panic restores the terminal before it is reported.
        ratatui::crossterm::terminal::enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            ratatui::crossterm::terminal::EnterAlternateScreen,
            event::EnableMouseCapture
        )?;
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            ratatui::restore();
            report(info);
        }));
        let backend = ratatui::backend::CrosstermBackend::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ));
        let mut terminal = ratatui::Terminal::new(backend)?;
        logs::divert(true);
        let (keys_tx, mut keys) = mpsc::unbounded_channel();
        let stop_input = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let input = std::thread::spawn({
            let stop = stop_input.clone();
            move || read_input(keys_tx, stop)
        });
        let mut app = App::new(self.layout);
        app.who = self.who.clone();
        let result = loop {
            let started = std::time::Instant::now();
            let mut rendered = std::time::Duration::ZERO;
            let drawn = terminal.draw(|frame| {
                draw::draw(frame, &mut app);
                rendered = started.elapsed();
            });
            let drawn = match drawn {
                Ok(drawn) => drawn.area,
                Err(e) => break Err(e),
            };
            // The frame rendered (every widget into the frame's buffer), and written to the
            // terminal (the changed cells): what the dashboard benchmark reads.
            tracing::debug!(
                render_us = rendered.as_micros() as u64,
                frame_us = started.elapsed().as_micros() as u64,
                width = drawn.width,
                height = drawn.height,
                tab = app.tab + 1,
                loaded = app.board.status.as_of.is_some(),
                preparing = app.board.status.preparing,
                "frame drawn"
            );
            if app.quit {
                break Ok(());
            }
            tokio::select! {
                _ = self.cancel.cancelled() => break Ok(()),
                Some(event) = keys.recv() => {
                    let ask = match event {
                        Event::Key(key) if key.kind == event::KeyEventKind::Press => app.on_key(key),
                        Event::Mouse(mouse) => app.on_mouse(mouse),
                        _ => None, // a resize: the next draw fits the new size
                    };
                    if let Some(ask) = ask {
                        let _ = self.asks.send(ask);
                    }
                }
                Some(update) = self.updates.recv() => match update {
                    Update::Board(board) => {
                        if let Some(ask) = app.set_board(board) {
                            let _ = self.asks.send(ask);
                        }
                    }
                    Update::Detail(detail) => app.set_detail(detail),
                    Update::Recorded(outcome) => app.recorded(outcome),
                },
                Ok(notice) = self.notices.recv() => {
                    let Notice::Failed { error, .. } = notice;
                    app.notice = Some(format!("refresh failed: {error}"));
                }
            }
        };
        stop_input.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = execute!(std::io::stdout(), event::DisableMouseCapture);
        ratatui::restore();
        logs::divert(false);
        let _ = input.join();
        result
    }
}

/// Read terminal events until `stop`, polling so that it notices.
fn read_input(tx: mpsc::UnboundedSender<Event>, stop: Arc<std::sync::atomic::AtomicBool>) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(e) => {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// The worker, a consumer of the snapshots: a board per snapshot (the fast panels first,
/// then those that wait for the models, then the KPI history of the trend panels), on the
/// latest snapshot.
struct Boards {
    preparer: Preparer,
    /// The board shown last, whose panels stay until the next snapshot's are ready.
    board: Board,
    updates: mpsc::UnboundedSender<Update>,
}

impl Consumer for Boards {
    type Report = ();

    fn name(&self) -> &'static str {
        "dashboard"
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        _cancel: &CancellationToken,
    ) -> (Option<()>, Next) {
        let status = Preparer::status(snapshot);
        let mut board = prepare::carried(&self.board, status);
        for phase in [Phase::Quick, Phase::Models, Phase::History] {
            board = self.preparer.board(snapshot, phase, board).await;
            if self.updates.send(Update::Board(board.clone())).is_err() {
                break;
            }
        }
        self.board = board;
        (None, Next::Newer)
    }
}

/// A detail per drill-down asked for, on the latest snapshot (beside the board being
/// prepared, so that it is on the screen as soon as its own queries are done), and each
/// action a form made, recorded into the actions feed (the service applies it at its next
/// refresh: it watches that feed).
async fn answer(
    ledger: Option<PathBuf>,
    snapshots: Snapshots,
    mut asks: mpsc::UnboundedReceiver<Ask>,
    updates: mpsc::UnboundedSender<Update>,
    recorder: Recorder,
) {
    while let Some(ask) = asks.recv().await {
        let Some(snapshot) = snapshots.borrow().clone() else {
            continue;
        };
        let update = match ask {
            Ask::Detail { customer_id, name } => {
                let detail = Preparer::detail(ledger.as_deref(), &snapshot, &customer_id, &name);
                Update::Detail(detail.await)
            }
            Ask::Record(action) => Update::Recorded(record(&recorder, &snapshot, action).await),
        };
        if updates.send(update).is_err() {
            return;
        }
    }
}

/// Record `action` on `snapshot`'s state: its summary, or why it was refused.
async fn record(
    recorder: &Recorder,
    snapshot: &Snapshot,
    action: Action,
) -> Result<String, String> {
    let who =
        (recorder.who.clone()).ok_or("start the dashboard with --as YOUR-ID to record actions")?;
    let by = crate::actions::write::RecordedBy {
        who,
        via: "dashboard".to_string(),
        at: chrono::Utc::now(),
    };
    let recorded = crate::actions::record(
        &snapshot.engine,
        snapshot.params.as_of,
        vec![action],
        &by,
        &recorder.to,
    );
    let (recorded, _) = recorded.await.map_err(|e| e.to_string())?;
    Ok(recorded
        .iter()
        .map(|r| r.summary.clone())
        .collect::<Vec<_>>()
        .join("; "))
}

/// Whether the dashboard can be shown: stdout and stdin are terminals.
pub fn on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}
