//! Work that must not slow a refresh down (a big extract, the risk model): on a thread of its
//! own, at the lowest CPU priority, with a current-thread runtime of its own, so that while it
//! takes seconds the refresh path keeps both cores.

use std::future::Future;

use tokio::task::JoinHandle;

/// Run the future `work` makes on a low-priority thread named `name`; the handle ends when
/// it does.
pub fn spawn<W, F>(name: &str, work: W) -> JoinHandle<()>
where
    W: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let what = name.to_string();
    let spawned = std::thread::Builder::new()
        .name(format!("arstream-{name}"))
        .spawn(move || {
            lower_this_threads_priority(&what);
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work()),
                Err(e) => tracing::error!("cannot start the runtime of the {what}: {e}"),
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread of the {name}: {e}");
    }
    tokio::spawn(async move {
        let _ = finished.await;
    })
}

/// The calling thread (only) at nice 19, so that it runs when nothing else wants the CPU.
fn lower_this_threads_priority(what: &str) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            tracing::debug!("cannot lower the priority of the {what}");
        }
    }
}
