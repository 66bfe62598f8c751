//! SQL over the Postgres wire protocol (`arstream serve`): psql, BI tools, JDBC and Python
//! drivers query the service's snapshots, read-only, through datafusion-postgres and pgwire.
//!
//! The server is a consumer of the snapshots: each new one is made ready (the Postgres
//! catalog on its engine) when it arrives and swapped in whole, so a query runs on the latest
//! snapshot when it starts and never on a mix. Sign-in is SCRAM-SHA-256 with one user from
//! the environment; anything but loopback needs a password and TLS, and a TLS set-up that
//! fails stops the command (the crate's own server would fall back to plaintext).

pub mod functions;
pub mod handlers;
pub mod latest;
pub mod read_only;
pub mod summaries;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion_postgres::pgwire;
use pgwire::api::ConnectionManager;
use pgwire::tokio::{TlsAcceptor, process_socket, tokio_rustls::rustls};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::service::Snapshot;
use crate::service::consumer::{Consumer, Next};
use handlers::{Connection, Shared};
use latest::{Latest, Served};

/// How the SQL server listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The certificate and private key (PEM) of TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub user: String,
    /// None: no sign-in, allowed on loopback only.
    pub password: Option<String>,
    /// Each query's time limit, unless a client sets its own.
    pub statement_timeout: Duration,
    /// The memory each query's joins, sorts and aggregates may hold, in bytes.
    pub query_memory: usize,
    /// Queries computing at once (the others wait their turn).
    pub max_running: usize,
    /// A connection with no query for this long is closed.
    pub idle_timeout: Duration,
    /// Connections at once; more are turned away.
    pub max_connections: usize,
}

/// Why the SQL server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a password: set ARSTREAM_SERVE_PASSWORD (and give --tls-cert and --tls-key), or listen on a loopback address such as 127.0.0.1"
    )]
    NoPassword(SocketAddr),
    #[error(
        "refusing to listen on {0} without TLS: give --tls-cert and --tls-key, or listen on a loopback address such as 127.0.0.1"
    )]
    NoTls(SocketAddr),
    #[error("TLS: cannot use the certificate '{cert}' and key '{key}': {reason}")]
    Tls {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl ServeOptions {
    /// Off loopback, a password and TLS are required.
    pub fn check(&self) -> Result<(), ServeError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        if self.password.is_none() {
            return Err(ServeError::NoPassword(self.listen));
        }
        if self.tls.is_none() {
            return Err(ServeError::NoTls(self.listen));
        }
        Ok(())
    }
}

/// The TLS acceptor of a certificate and key; any failure is an error, never plaintext.
fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let failed = |reason: String| ServeError::Tls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| failed(format!("the certificate: {e}")))?;
    if certs.is_empty() {
        return Err(failed("no certificate in the certificate file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| failed(format!("the key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| failed(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What the SQL server reports of the snapshots it serves.
#[derive(Debug)]
pub enum Serving {
    /// Queries now run on snapshot `sequence`, ready after `took`.
    Ready {
        sequence: u64,
        took: Duration,
    },
    Failed {
        sequence: u64,
        error: String,
    },
}

/// The SQL server: bound at once (so that a port in use or a bad certificate stops the
/// command), accepting connections from its start, serving each snapshot it is handed.
pub struct SqlServer {
    listener: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    idle_timeout: Duration,
    max_connections: usize,
    stop: CancellationToken,
    addr: SocketAddr,
    /// The summary views clients read, computed ahead on each new snapshot.
    read: summaries::Read,
    _runtime: QueryRuntime,
}

/// The runtime the connections run on, their queries with them (DataFusion spawns a query's
/// partitions where it runs): the service's runtime (the refresh, the outputs) is never
/// held up by a query. Shut down without waiting when dropped.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> std::io::Result<QueryRuntime> {
        // More threads than one query's partitions use (one per core), so that a long query
        // leaves threads for the other connections, their sign-ins and cancels.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores * 4)
            .thread_name("arstream-sql")
            .enable_all()
            .build()?;
        Ok(QueryRuntime(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("a runtime until dropped")
            .handle()
            .clone()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl SqlServer {
    /// Check the options, set up TLS and bind the address.
    pub async fn bind(options: ServeOptions) -> Result<SqlServer, ServeError> {
        options.check()?;
        let tls = match &options.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: options.listen,
                    source,
                })?;
        let addr = listener.local_addr().unwrap_or(options.listen);
        let runtime = QueryRuntime::new().map_err(|source| ServeError::Listen {
            addr: options.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            runtime: runtime.handle(),
            latest: Arc::new(Latest::default()),
            statement_timeout: options.statement_timeout,
            query_memory: options.query_memory,
            running: Arc::new(Semaphore::new(options.max_running.max(1))),
            credentials: (options.password.clone()).map(|p| (options.user.clone(), p)),
            tls_required: tls.is_some(),
            connections: Arc::new(ConnectionManager::new()),
        });
        Ok(SqlServer {
            listener: Some(listener),
            tls,
            shared,
            idle_timeout: options.idle_timeout,
            max_connections: options.max_connections,
            stop: CancellationToken::new(),
            addr,
            read: Default::default(),
            _runtime: runtime,
        })
    }

    /// The address it listens on (the port chosen, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether clients sign in, and whether over TLS: for the start-up line.
    pub fn describe(&self) -> String {
        let auth = match &self.shared.credentials {
            Some((user, _)) => format!("password (SCRAM-SHA-256) for user '{user}'"),
            None => "no password (loopback only)".to_string(),
        };
        let tls = if self.tls.is_some() { "TLS" } else { "no TLS" };
        format!("{auth}, {tls}")
    }
}

impl Consumer for SqlServer {
    type Report = Serving;

    fn name(&self) -> &'static str {
        "sql"
    }

    async fn start(&mut self) -> Result<(), Serving> {
        if let Some(listener) = self.listener.take() {
            let accepting = Accepting {
                tls: self.tls.clone(),
                shared: self.shared.clone(),
                idle_timeout: self.idle_timeout,
                slots: Arc::new(Semaphore::new(self.max_connections)),
                stop: self.stop.clone(),
            };
            tokio::spawn(accepting.run(listener));
            tracing::info!(listen = %self.addr, "SQL server listening ({})", self.describe());
        }
        Ok(())
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        cancel: &CancellationToken,
    ) -> (Option<Serving>, Next) {
        let began = Instant::now();
        let sequence = snapshot.sequence;
        match Served::new(snapshot.clone(), &self.read).await {
            Ok(served) => {
                self.shared.latest.set(served);
                let took = began.elapsed();
                // The summaries clients read on the last snapshot, computed now (on the
                // queries' runtime) rather than by the next client to ask.
                let (snapshot, read) = (snapshot.clone(), self.read.clone());
                let warming = (self.shared.runtime)
                    .spawn(async move { summaries::warm(&snapshot, &read).await });
                let abort = warming.abort_handle();
                tokio::select! {
                    _ = cancel.cancelled() => abort.abort(),
                    _ = warming => {}
                }
                (Some(Serving::Ready { sequence, took }), Next::Newer)
            }
            Err(error) => (Some(Serving::Failed { sequence, error }), Next::Retry),
        }
    }

    async fn stop(&mut self) {
        self.stop.cancel();
    }
}

/// The accept loop and what each connection shares.
struct Accepting {
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    idle_timeout: Duration,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Accepting {
    async fn run(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(peer = %peer, "connection refused: {} connections already", self.slots.available_permits());
                continue;
            };
            let activity = Arc::new(Activity::new());
            let connection = Arc::new(Connection::new(&self.shared, activity.clone()));
            let (tls, stop, idle) = (self.tls.clone(), self.stop.clone(), self.idle_timeout);
            self.shared.runtime.spawn(async move {
                let opened = Instant::now();
                tracing::info!(peer = %peer, "connection opened");
                let why = tokio::select! {
                    served = process_socket(socket, tls, connection) => match served {
                        Ok(()) => "closed by the client".to_string(),
                        Err(e) => format!("ended: {e}"),
                    },
                    _ = activity.idle_for(idle) => format!("closed after {} s idle", idle.as_secs()),
                    _ = stop.cancelled() => "closed at the stop".to_string(),
                };
                tracing::info!(
                    peer = %peer,
                    queries = activity.queries(),
                    seconds = opened.elapsed().as_secs_f64(),
                    "connection {why}"
                );
                drop(slot);
            });
        }
    }
}

/// A query running on a connection.
pub struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = (Instant::now(), state.1.saturating_sub(1), state.2);
    }
}

/// When a connection last did something, to close it once idle.
pub struct Activity {
    /// The last query's start or end, and the queries running and done.
    state: Mutex<(Instant, usize, u64)>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// A query runs until the guard is dropped.
    pub fn busy(&self) -> Busy<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = (Instant::now(), state.1 + 1, state.2 + 1);
        Busy(self)
    }

    fn queries(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).2
    }

    /// Returns once nothing ran for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let (last, running, _) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
            let left = idle.saturating_sub(last.elapsed());
            if running == 0 && left.is_zero() {
                return;
            }
            let wait = if running > 0 { idle } else { left };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    }
}
