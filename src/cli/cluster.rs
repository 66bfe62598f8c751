//! `arstream scheduler` and `arstream executor`: a Ballista cluster for `sql --cluster`.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::cluster::{ExecutorOptions, SchedulerOptions};
use crate::engine::cluster::DEFAULT_SCHEDULER_PORT;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Ballista's scheduler with arstream's SQL functions and plan codec (the stock ballista-scheduler cannot decode arstream's plans). Start it, then one or more `arstream executor`s, then query: `arstream sql --cluster df://HOST:PORT …` runs the views of queries/ over the published tables ([publish] url). See docs/scale-out.md.\n\nExamples:\n  arstream scheduler\n  arstream scheduler --bind 0.0.0.0:50050 --external-host sched.internal"
)]
pub struct SchedulerArgs {
    /// Address to listen on (port 0: any free port, printed at start)
    #[arg(long, value_name = "HOST:PORT", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_SCHEDULER_PORT)))]
    pub bind: SocketAddr,
    /// Host name executors and clients reach the scheduler by
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub external_host: String,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Ballista's executor with arstream's SQL functions, plan codec and object stores (published tables on S3, GCS or Azure are read with the credentials of the environment, as arstream reads its own). It registers with the scheduler and runs the tasks of `sql --cluster` queries until SIGTERM or Ctrl-C. Every executor must reach the published tables' files at the same URLs as the client (a shared folder or an object store).\n\nExamples:\n  arstream executor --scheduler localhost:50050\n  arstream executor --scheduler sched.internal:50050 --bind-host 0.0.0.0 --external-host worker-1 --concurrent-tasks 8"
)]
pub struct ExecutorArgs {
    /// The scheduler's HOST:PORT
    #[arg(long, value_name = "HOST:PORT", default_value = "localhost:50050")]
    pub scheduler: String,
    /// Host to listen on
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Host name the scheduler and other executors reach this one by [default: the bind host]
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
    /// Port of the Arrow Flight service other executors and clients fetch results from
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// Port of the executor's gRPC service
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once [default: the machine's cores]
    #[arg(long, value_name = "N")]
    pub concurrent_tasks: Option<usize>,
    /// Folder for intermediate (shuffle) files [default: a temporary folder]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,
}

pub async fn scheduler(args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::service::signals::stop_on_signals();
    let options = SchedulerOptions {
        bind: args.bind,
        external_host: args.external_host.clone(),
    };
    let listening = |address: SocketAddr| {
        println!(
            "scheduler listening on {address}: executors join with `arstream executor --scheduler {}:{}`, queries run with `--cluster df://{}:{}`",
            args.external_host,
            address.port(),
            args.external_host,
            address.port()
        );
    };
    crate::cluster::run_scheduler(options, listening, stop.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn executor(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let (host, port) = match args.scheduler.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse::<u16>().ok()),
        None => (args.scheduler.clone(), Some(DEFAULT_SCHEDULER_PORT)),
    };
    let Some(port) = port else {
        eprintln!("error: --scheduler '{}' is not HOST:PORT", args.scheduler);
        return Ok(ExitCode::from(super::INVALID));
    };
    println!(
        "executor on {}:{} (gRPC {}), working for the scheduler at {host}:{port}",
        args.external_host.as_deref().unwrap_or(&args.bind_host),
        args.port,
        args.grpc_port
    );
    let options = ExecutorOptions {
        scheduler_host: host,
        scheduler_port: port,
        bind_host: args.bind_host,
        external_host: args.external_host,
        port: args.port,
        grpc_port: args.grpc_port,
        vcores: args.concurrent_tasks,
        work_dir: args.work_dir,
    };
    crate::cluster::run_executor(options).await?;
    Ok(ExitCode::SUCCESS)
}
