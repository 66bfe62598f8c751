//! `arstream scheduler` and `arstream executor`: a Ballista cluster that runs arstream's views
//! (`sql --cluster`, see [`crate::engine::cluster`]).
//!
//! They are Ballista's own scheduler and executor, started with what arstream's plans need:
//! its SQL functions (`allocate_cents`), the codec for the tables a plan carries (the
//! parameters and the models' tables, as Arrow IPC), and arstream's object stores (a
//! published table on S3, GCS or Azure is read with the same credentials from the
//! environment as the rest of arstream). Ballista's stock `ballista-scheduler` cannot decode
//! those plans: it knows neither the functions nor the codec.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use object_store::ObjectStore;

use crate::engine::cluster::{ClusterCodec, MAX_MESSAGE_BYTES, server_state};

/// Why a scheduler or executor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// Where a scheduler listens and how it names itself to executors and clients.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The address to listen on (`127.0.0.1:50050`).
    pub bind: SocketAddr,
    /// The host executors and clients reach it by.
    pub external_host: String,
}

/// Run a scheduler until `stop` completes. `listening` is told the address it listens on
/// (the port, when 0 was asked for).
pub async fn run_scheduler(
    options: SchedulerOptions,
    listening: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| ClusterError::Listen {
            address: options.bind.to_string(),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| ClusterError::Listen {
            address: options.bind.to_string(),
            source,
        })?;
    let config = SchedulerConfig::default()
        .with_hostname(options.external_host)
        .with_port(address.port())
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_grpc_server_max_decoding_message_size(MAX_MESSAGE_BYTES as u32)
        .with_grpc_server_max_encoding_message_size(MAX_MESSAGE_BYTES as u32)
        .with_grpc_client_max_message_size(MAX_MESSAGE_BYTES as u32)
        .with_override_config_producer(Arc::new(session_config))
        .with_override_session_builder(Arc::new(|config| Ok(server_state(config, runtime()?))));
    let config = SchedulerConfig {
        override_logical_codec: Some(Arc::new(ClusterCodec::server())),
        ..config
    };
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await?;
    listening(address);
    tokio::select! {
        served = start_grpc_service_with_listener(listener, scheduler) => Ok(served?),
        () = stop => Ok(()),
    }
}

/// Where an executor listens and which scheduler it works for.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// The host to listen on, and the host the scheduler and other executors reach it by.
    pub bind_host: String,
    pub external_host: Option<String>,
    /// Arrow Flight (the results of its tasks) and gRPC ports.
    pub port: u16,
    pub grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    pub vcores: Option<usize>,
    /// Where shuffle files go (default: a temporary folder).
    pub work_dir: Option<String>,
}

/// Run an executor until SIGTERM or Ctrl-C (Ballista's executor stops on them itself).
pub async fn run_executor(options: ExecutorOptions) -> Result<(), ClusterError> {
    let state = server_state(session_config(), runtime()?);
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        scheduler_host: options.scheduler_host,
        scheduler_port: options.scheduler_port,
        bind_host: options.bind_host,
        external_host: options.external_host,
        port: options.port,
        grpc_port: options.grpc_port,
        vcores: options.vcores.unwrap_or(defaults.vcores),
        work_dir: options.work_dir,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        print_thread_info: false,
        override_function_registry: Some(Arc::new((&state).into())),
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(Arc::new(|_: &SessionConfig| runtime())),
        override_logical_codec: Some(Arc::new(ClusterCodec::server())),
        ..defaults
    };
    Ok(start_executor_process(Arc::new(config)).await?)
}

/// The session configuration a scheduler or executor starts from: Ballista's, which a
/// client's settings (sent with each job) update; without the adaptive planner (see
/// [`crate::engine::cluster::client_state`]).
fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
}

/// A runtime whose object stores are arstream's (the scheduler lists a table's files, the
/// executors read them).
fn runtime() -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let stores: Arc<dyn ObjectStoreRegistry> = Arc::new(Stores::default());
    Ok(Arc::new(
        RuntimeEnvBuilder::new()
            .with_object_store_registry(stores)
            .build()?,
    ))
}

/// Object stores by URL: the local disk, and any `s3://`, `gs://` or `az://` bucket opened
/// the way arstream opens its own (credentials from the environment) when first asked for.
#[derive(Debug, Default)]
pub struct Stores {
    opened: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.opened.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.opened.get_store(url) {
            return Ok(store);
        }
        let mut root = url.clone();
        root.set_path("/");
        let location = crate::store::open(root.as_str(), false)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        self.opened.register_store(&root, location.store.clone());
        Ok(location.store)
    }
}
