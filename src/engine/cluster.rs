//! The engine on a Ballista cluster: the same views, planned here, run by a scheduler and its
//! executors (`arstream scheduler`, `arstream executor`).
//!
//! A Ballista client sends the scheduler its logical plan; the scheduler plans it physically
//! and hands the stages to the executors. What the plan reads must therefore travel: the
//! published Delta tables are `ListingTable`s over their Parquet files (see [`super::published`]),
//! which DataFusion serializes itself; the small tables arstream makes in memory (the
//! parameters, the models' tables, an empty table) travel as Arrow IPC in the plan, by
//! [`ClusterCodec`]. The engine's own catalog tables ([`SnapshotTable`], which take their rows
//! from the session that scans them) are sent as the rows they stand for. The scheduler and
//! the executors know arstream's SQL functions ([`functions`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{Extension, LogicalPlan, LogicalPlanBuilder, WindowUDF};
use datafusion::prelude::SessionConfig;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use super::EngineError;
use super::tables::{SnapshotData, SnapshotTable};

/// The port a Ballista scheduler listens on unless told otherwise.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// The largest gRPC message the client, scheduler and executors take: a plan carries the
/// models' tables (at 10 M invoices the scores and forecast of ~400,000 open invoices, more
/// than Ballista's default of 16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// arstream's SQL functions, for the scheduler's and executors' sessions.
pub fn functions() -> Vec<WindowUDF> {
    super::functions::all()
}

/// The scheduler's gRPC address (`http://HOST:PORT`) of a cluster URL `df://HOST[:PORT]`.
pub fn scheduler_address(url: &str) -> Result<String, EngineError> {
    let wrong = |why: &str| {
        EngineError::Queries(format!(
            "cluster '{url}': {why} (give df://HOST:PORT, the scheduler's address)"
        ))
    };
    let parsed = url::Url::parse(url).map_err(|e| wrong(&e.to_string()))?;
    if parsed.scheme() != "df" {
        return Err(wrong("not a df:// URL"));
    }
    let host = parsed.host_str().ok_or_else(|| wrong("no host"))?;
    let port = parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
    Ok(format!("http://{host}:{port}"))
}

/// A client session whose queries run on the scheduler at `address` (`http://HOST:PORT`):
/// `config` (the engine's, carrying its rows) with the codec and Ballista's planner.
pub fn client_state(
    config: SessionConfig,
    rows: Arc<SnapshotData>,
    address: &str,
) -> Result<SessionState> {
    // Ballista 55's adaptive planner leaves a job waiting forever when it finds a stage is
    // no longer needed ("stages to be cancelled but its not implemented": the worklist's
    // assignment query hung on it): the static planner runs every stage.
    let config = config
        .with_ballista_logical_extension_codec(Arc::new(ClusterCodec::client(rows)))
        .upgrade_for_ballista()
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES);
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build()
        .upgrade_for_ballista(address.to_string())
}

/// The session of a scheduler or executor: DataFusion's functions, Ballista's and arstream's,
/// the codec for what arstream's plans carry, and `runtime` (its object stores).
pub fn server_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    let config = config
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(Arc::new(ClusterCodec::server()));
    let mut windows = ballista_core::extension::ballista_window_functions();
    windows.extend(functions().into_iter().map(Arc::new));
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_scalar_functions(ballista_core::extension::ballista_scalar_functions())
        .with_aggregate_functions(ballista_core::extension::ballista_aggregate_functions())
        .with_window_functions(windows)
        .build()
}

/// A table sent as the scan of the rows it stands for (a [`SnapshotTable`]).
const SCAN: u8 = 1;
/// A table sent with its rows (a `MemTable`), as Arrow IPC.
const ROWS: u8 = 2;
/// Any other table, sent by Ballista's own codec.
const OTHER: u8 = 3;

/// Ballista's logical codec, with arstream's in-memory and catalog tables sent along.
#[derive(Debug)]
pub struct ClusterCodec {
    /// The client's rows, by table name; a scheduler has none (it receives rows, never
    /// sends a catalog table).
    rows: Option<Arc<SnapshotData>>,
    ballista: BallistaLogicalExtensionCodec,
}

impl ClusterCodec {
    pub fn client(rows: Arc<SnapshotData>) -> Self {
        ClusterCodec {
            rows: Some(rows),
            ballista: BallistaLogicalExtensionCodec::default(),
        }
    }

    pub fn server() -> Self {
        ClusterCodec {
            rows: None,
            ballista: BallistaLogicalExtensionCodec::default(),
        }
    }
}

impl LogicalExtensionCodec for ClusterCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some((kind, body)) = buf.split_first() else {
            return Err(DataFusionError::Internal(format!(
                "table '{table_ref}' arrived empty"
            )));
        };
        match *kind {
            SCAN => {
                let plan = logical_plan_from_bytes_with_extension_codec(body, ctx, self)?;
                match plan {
                    LogicalPlan::TableScan(scan) => source_as_provider(&scan.source),
                    other => Err(DataFusionError::Internal(format!(
                        "table '{table_ref}' arrived as a {} plan, not a scan",
                        other.display()
                    ))),
                }
            }
            ROWS => {
                let reader = arrow::ipc::reader::StreamReader::try_new(body, None)?;
                let batches = reader.collect::<Result<Vec<RecordBatch>, _>>()?;
                Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
            }
            OTHER => self
                .ballista
                .try_decode_table_provider(body, table_ref, schema, ctx),
            other => Err(DataFusionError::Internal(format!(
                "table '{table_ref}' arrived with an unknown kind {other}"
            ))),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<SnapshotTable>() {
            let rows = (self.rows.as_ref())
                .and_then(|rows| rows.get(table.name()))
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("table '{table_ref}' has no rows to send"))
                })?;
            let scan = LogicalPlanBuilder::scan(table_ref.clone(), provider_as_source(rows), None)?
                .build()?;
            buf.push(SCAN);
            buf.extend_from_slice(&logical_plan_to_bytes_with_extension_codec(&scan, self)?);
            return Ok(());
        }
        if let Some(table) = node.downcast_ref::<MemTable>() {
            buf.push(ROWS);
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(buf, &table.schema())?;
            for partition in &table.batches {
                let batches = partition.try_read().map_err(|_| {
                    DataFusionError::Internal(format!("table '{table_ref}' is being written"))
                })?;
                for batch in batches.iter() {
                    writer.write(batch)?;
                }
            }
            writer.finish()?;
            return Ok(());
        }
        buf.push(OTHER);
        self.ballista
            .try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}
