//! The stop of a command or service: Ctrl-C or SIGTERM cancels one token.

use tokio_util::sync::CancellationToken;

/// A token cancelled on Ctrl-C, or SIGTERM where there is one. The handlers are installed
/// when this is called, so a signal that arrives during the first catch-up is not lost (and
/// does not kill the process mid-write).
pub fn stop_on_signals() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        tokio::spawn(async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    cancel
}
