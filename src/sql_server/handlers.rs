//! What answers a connection: datafusion-postgres' session service over the latest snapshot,
//! per query (a statement prepared on one snapshot is planned again on the latest when it
//! runs), with the statement time limit, the client's cancel and the log around it, and the
//! sign-in (SCRAM-SHA-256, or none on loopback without a password).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::pgwire;
use futures::{Sink, StreamExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::Bind;
use pgwire::types::format::FormatOptions;

use super::Activity;
use super::latest::{Latest, Served};

/// A statement as datafusion-postgres parses it.
pub type DfStatement = <datafusion_postgres::Parser as QueryParser>::Statement;

/// The key of a client's own `SET statement_timeout`, as datafusion-postgres keeps it.
const CLIENT_TIMEOUT: &str = "statement_timeout_ms";

/// SCRAM's iteration count (the RFC's minimum, as PostgreSQL's default).
const ITERATIONS: usize = 4096;

/// What every connection shares.
pub struct Shared {
    pub latest: Arc<Latest>,
    /// Each query's time limit, unless the client set its own.
    pub statement_timeout: Duration,
    /// The memory each query's operators may hold, in bytes.
    pub query_memory: usize,
    /// Queries computing at once; the others wait their turn (within their time limit), so
    /// that many clients cannot hold many queries' memory at once.
    pub running: Arc<tokio::sync::Semaphore>,
    /// The one user and password (none: no sign-in, loopback only).
    pub credentials: Option<(String, String)>,
    /// With TLS set up, a connection without it is refused (pgwire would take it).
    pub tls_required: bool,
    pub connections: Arc<ConnectionManager>,
    /// The runtime of the connections and their queries (see `QueryRuntime`).
    pub runtime: tokio::runtime::Handle,
}

/// The handlers of one connection (each has its own sign-in state).
pub struct Connection {
    queries: Arc<Queries>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Connection {
    pub fn new(shared: &Arc<Shared>, activity: Arc<Activity>) -> Connection {
        let params = Arc::new(DefaultServerParameterProvider::default());
        let manager = shared.connections.clone();
        let signin = match &shared.credentials {
            Some((user, password)) => {
                let source = Credentials {
                    user: user.clone(),
                    password: password.clone(),
                };
                let mut scram = ScramAuth::new(Arc::new(source));
                scram.set_iterations(ITERATIONS);
                let sasl = SASLAuthStartupHandler::new(params)
                    .with_scram(scram)
                    .with_connection_manager(manager);
                SignIn::Password(sasl)
            }
            None => SignIn::Trust(Trust(manager)),
        };
        Connection {
            queries: Arc::new(Queries {
                shared: shared.clone(),
                parser: Arc::new(LatestParser(shared.latest.clone())),
                activity,
            }),
            startup: Arc::new(Startup {
                signin,
                tls_required: shared.tls_required,
            }),
            cancel: Arc::new(DefaultCancelHandler::new(shared.connections.clone())),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogFailures)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// One line per failed query in the log.
struct LogFailures;

impl ErrorHandler for LogFailures {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        let user = client.metadata().get(pgwire::api::METADATA_USER).cloned();
        tracing::warn!(peer = %client.socket_addr(), user = user.unwrap_or_default(), "query failed: {error}");
    }
}

/// The one user and password, from the environment.
#[derive(Debug)]
struct Credentials {
    user: String,
    password: String,
}

#[async_trait]
impl AuthSource for Credentials {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let salt: [u8; 16] = rand::random();
        // An unknown user gets a password nobody has, so that the exchange fails the same way.
        let password = match login.user() == Some(self.user.as_str()) {
            true => self.password.clone(),
            false => format!("{:x}", rand::random::<u128>()),
        };
        let salted = gen_salted_password(&password, &salt, ITERATIONS);
        Ok(Password::new(Some(salt.to_vec()), salted))
    }
}

/// The sign-in of a connection, after the check that it uses TLS when the server has it.
struct Startup {
    signin: SignIn,
    tls_required: bool,
}

enum SignIn {
    Password(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Trust(Trust),
}

/// No sign-in (loopback without a password), but the connection registered for cancels.
struct Trust(Arc<ConnectionManager>);

#[async_trait]
impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.tls_required && !client.is_secure() {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "this server takes TLS connections only: connect with sslmode=require (or verify-full)".into(),
            ))));
        }
        match &self.signin {
            SignIn::Password(sasl) => sasl.on_startup(client, message).await,
            SignIn::Trust(trust) => trust.on_startup(client, message).await,
        }
    }
}

/// The queries of a connection, each on the latest snapshot.
pub struct Queries {
    shared: Arc<Shared>,
    parser: Arc<LatestParser>,
    activity: Arc<Activity>,
}

impl Queries {
    /// The client's own time limit, or the server's.
    fn timeout<C: ClientInfo>(&self, client: &C) -> Duration {
        (client.metadata().get(CLIENT_TIMEOUT))
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(self.shared.statement_timeout)
    }

    /// The session service of one query, with its memory limit.
    fn service(&self, served: &Served) -> PgWireResult<DfSessionService> {
        (served.for_query(self.shared.query_memory)).map_err(|e| PgWireError::ApiError(e.into()))
    }

    /// `run`, whole (its rows computed here, so that the time limit and a cancel stop the
    /// work, not only its start), within `limit`.
    async fn limited<F>(&self, limit: Duration, sql: &str, run: F) -> PgWireResult<Vec<Response>>
    where
        F: std::future::Future<Output = PgWireResult<Vec<Response>>> + Send,
    {
        let started = Instant::now();
        // Ended when dropped: also when a cancel drops this query.
        let _busy = self.activity.busy();
        let runtime = &self.shared.runtime;
        let running = self.shared.running.clone();
        let whole = async {
            let _turn = running.acquire_owned().await;
            let mut out = Vec::new();
            for response in run.await? {
                out.push(computed(response, runtime).await?);
            }
            Ok(out)
        };
        let result = match tokio::time::timeout(limit, whole).await {
            Ok(result) => result,
            Err(_) => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "57014".into(),
                format!(
                    "canceling statement due to statement timeout ({} s)",
                    limit.as_secs_f64()
                ),
            )))),
        };
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "query: {}",
            sql.chars().take(200).collect::<String>()
        );
        result
    }
}

/// Rows computed already, as a response in `format`.
async fn respond<C: ClientInfo>(
    served: &Served,
    (schema, mut batches): crate::service::QueryResult,
    format: &Format,
    client: &C,
) -> PgWireResult<Response> {
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    if batches.is_empty() {
        batches.push(arrow::array::RecordBatch::new_empty(schema));
    }
    let frame = served.session().read_batches(batches).map_err(api)?;
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let rows = encode_dataframe(frame, format, Some(options)).await?;
    computed(Response::Query(rows), &tokio::runtime::Handle::current()).await
}

/// `response` with its rows computed, in a task of its own so that the connection's task
/// stays free to see a cancel or the time limit; the task is stopped when this future is
/// dropped.
async fn computed(response: Response, runtime: &tokio::runtime::Handle) -> PgWireResult<Response> {
    let Response::Query(query) = response else {
        return Ok(response);
    };
    let QueryResponse {
        command_tag,
        row_schema,
        data_rows,
        ..
    } = query;
    let task = runtime.spawn(data_rows.collect::<Vec<_>>());
    let abort = task.abort_handle();
    let _stop_when_dropped = scopeguard(move || abort.abort());
    let rows = task.await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    if let Some(Err(_)) = rows.iter().find(|r| r.is_err()) {
        let failed = rows.into_iter().find_map(|r| r.err());
        return Err(failed.expect("an error"));
    }
    let mut out = QueryResponse::new(row_schema, futures::stream::iter(rows));
    out.set_command_tag(&command_tag);
    Ok(Response::Query(out))
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let served = self.shared.latest.get()?;
        if let Some(rows) = served.computed(query).await {
            let _busy = self.activity.busy();
            let response = respond(&served, rows, &Format::UnifiedText, client).await?;
            return Ok(vec![response]);
        }
        served.make_derived(query).await;
        let limit = self.timeout(client);
        let service = self.service(&served)?;
        let run = <DfSessionService as SimpleQueryHandler>::do_query(&service, client, query);
        self.limited(limit, query, run).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = DfStatement;
    type QueryParser = LatestParser;

    fn query_parser(&self) -> Arc<LatestParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<DfStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let served = self.shared.latest.get()?;
        let sql = portal.statement.statement.0.clone();
        if portal.parameters.is_empty()
            && let Some(rows) = served.computed(&sql).await
        {
            let _busy = self.activity.busy();
            return respond(&served, rows, &portal.result_column_format, client).await;
        }
        served.make_derived(&sql).await;
        // Planned again on the latest snapshot, whichever it was prepared on.
        let types = &portal.statement.parameter_types;
        let parser = served.service.query_parser();
        let Some(statement) = parser.parse_sql(&*client, &sql, types).await? else {
            return Ok(Response::EmptyQuery);
        };
        let wanted = parser.get_parameter_types(&statement)?;
        let mut types = types.clone();
        let mut values = portal.parameters.clone();
        let formats = as_numeric(&wanted, &mut types, &portal.parameter_format, &mut values);
        let statement = StoredStatement::new(portal.statement.id.clone(), statement, types);
        let bind = Bind::new(
            Some(portal.name.clone()),
            Some(portal.statement.id.clone()),
            formats,
            values,
            codes(&portal.result_column_format),
        );
        let portal = Portal::try_new(&bind, Arc::new(statement))?;
        let limit = self.timeout(client);
        let service = self.service(&served)?;
        let run = async {
            let one = <DfSessionService as ExtendedQueryHandler>::do_query(
                &service, client, &portal, max_rows,
            );
            Ok(vec![one.await?])
        };
        let mut responses = self.limited(limit, &sql, run).await?;
        Ok(responses.pop().unwrap_or(Response::EmptyQuery))
    }
}

/// Parameters a client sent as integers or floats where the statement wants a decimal (JDBC's
/// `setInt`, a Python `int` against a money column), re-encoded as numeric text: the protocol
/// layer decodes numeric into the decimal, but refuses an integer or a float for it. Returns
/// the parameters' format codes.
fn as_numeric(
    wanted: &[Type],
    types: &mut [Option<Type>],
    format: &Format,
    values: &mut [Option<bytes::Bytes>],
) -> Vec<i16> {
    let mut formats = Vec::with_capacity(values.len());
    for (i, value) in values.iter_mut().enumerate() {
        let binary = format.is_binary(i);
        formats.push(i16::from(binary));
        let sent = types.get(i).cloned().flatten();
        let (Some(sent), Some(&Type::NUMERIC)) = (sent, wanted.get(i)) else {
            continue;
        };
        let Some(bytes) = value.as_ref() else {
            continue;
        };
        let text = match (binary, &sent) {
            (false, t) if is_number(t) => std::str::from_utf8(bytes).ok().map(str::to_string),
            (true, &Type::INT2) => bytes[..]
                .try_into()
                .ok()
                .map(|b| i16::from_be_bytes(b).to_string()),
            (true, &Type::INT4) => bytes[..]
                .try_into()
                .ok()
                .map(|b| i32::from_be_bytes(b).to_string()),
            (true, &Type::INT8) => bytes[..]
                .try_into()
                .ok()
                .map(|b| i64::from_be_bytes(b).to_string()),
            (true, &Type::FLOAT4) => (bytes[..].try_into().ok())
                .map(f32::from_be_bytes)
                .filter(|f| f.is_finite())
                .map(|f| f.to_string()),
            (true, &Type::FLOAT8) => (bytes[..].try_into().ok())
                .map(f64::from_be_bytes)
                .filter(|f| f.is_finite())
                .map(|f| f.to_string()),
            _ => None,
        };
        if let Some(text) = text {
            *value = Some(bytes::Bytes::from(text));
            types[i] = Some(Type::NUMERIC);
            formats[i] = 0;
        }
    }
    formats
}

fn is_number(t: &Type) -> bool {
    [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
    ]
    .contains(t)
}

/// The format codes of a Bind message that give `format` (the result columns').
fn codes(format: &Format) -> Vec<i16> {
    match format {
        Format::UnifiedText => vec![],
        Format::UnifiedBinary => vec![1],
        Format::Individual(codes) => codes.clone(),
    }
}

/// Parses a prepared statement on the latest snapshot (its parameters and columns).
pub struct LatestParser(Arc<Latest>);

impl LatestParser {
    fn parser(&self) -> PgWireResult<Arc<datafusion_postgres::Parser>> {
        let served: Arc<Served> = self.0.get()?;
        Ok(served.service.query_parser())
    }
}

#[async_trait]
impl QueryParser for LatestParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<DfStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // A statement whose rows the refresh computed (the KPI summary) is described from
        // their schema, not by planning the views under it; `do_query` answers it from them.
        let served = self.0.get()?;
        if let Some(schema) = served.computed_schema(sql) {
            let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                sql,
            );
            if let Ok(mut statements) = parsed
                && statements.len() == 1
            {
                let statement = statements.remove(0);
                let empty = arrow::array::RecordBatch::new_empty(schema);
                if let Ok(frame) = served.session().read_batch(empty) {
                    let plan = frame.into_unoptimized_plan();
                    return Ok(Some((statement.to_string(), Some((statement, plan)))));
                }
            }
        }
        served
            .service
            .query_parser()
            .parse_sql(client, sql, types)
            .await
    }

    fn get_parameter_types(&self, statement: &DfStatement) -> PgWireResult<Vec<Type>> {
        self.parser()?.get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &DfStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.parser()?.get_result_schema(statement, column_format)
    }
}
