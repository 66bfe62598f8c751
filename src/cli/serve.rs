//! `arstream serve`: the service of a pipeline (as `run --headless`) with SQL over the
//! Postgres wire protocol on its snapshots (see [`crate::sql_server`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::GlobalArgs;
use super::INVALID;
use super::run::{plan_of, poll_interval, serve};
use crate::sql_server::{ServeOptions, SqlServer};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Sign-in: the user is ARSTREAM_SERVE_USER (default arstream), the password ARSTREAM_SERVE_PASSWORD (SCRAM-SHA-256). Without a password only a loopback address is served; off loopback a password and TLS are required.\n\nRead-only: INSERT, UPDATE, DELETE, DDL, COPY and SET of anything but session options are refused.\n\nExamples, on the bundled sample feed:\n  arstream serve                                  (127.0.0.1:5433, no password)\n  psql -h 127.0.0.1 -p 5433 -U arstream -c 'SELECT total_ar, dso FROM kpi_summary'\n  ARSTREAM_SERVE_PASSWORD=secret arstream serve --listen 0.0.0.0:5433 --tls-cert server.crt --tls-key server.key"
)]
pub struct ServeArgs {
    /// The address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// TLS: the server's certificate (PEM); with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the certificate's private key (PEM); with --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Each query's time limit, in seconds (a client's `SET statement_timeout` wins)
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = seconds)]
    pub statement_timeout: f64,
    /// The memory each query's joins, sorts and aggregates may hold, in MiB; past it the
    /// query fails with an error and the server goes on
    #[arg(long, value_name = "MIB", default_value = "2048")]
    pub query_memory: usize,
    /// Queries computing at once; the others wait their turn (within their time limit), so
    /// that many clients never hold many queries' memory at once
    #[arg(long, value_name = "N", default_value = "4")]
    pub max_running: usize,
    /// Close a connection after this many seconds without a query
    #[arg(long, value_name = "SECONDS", default_value = "1800", value_parser = seconds)]
    pub idle_timeout: f64,
    /// Connections at once; more are turned away
    #[arg(long, value_name = "N", default_value = "100")]
    pub max_connections: usize,
    /// The pipeline to run: a file of the pipelines folder, without .toml, or a path
    /// [default: standard, when there is such a file]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Write the outputs under this folder or URL instead of the pipeline's `out`
    #[arg(long, value_name = "URL")]
    pub out: Option<String>,
    /// Poll the feed every this many seconds instead of the pipeline's schedule (0.05 to
    /// 86400)
    #[arg(long, value_name = "SECONDS", value_parser = poll_interval, allow_negative_numbers = true)]
    pub interval: Option<f64>,
}

/// A positive number of seconds.
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let Some(plan) = plan_of(
        global,
        args.pipeline.as_deref(),
        args.out.as_deref(),
        args.interval,
    ) else {
        return Ok(ExitCode::from(INVALID));
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let serve_options = ServeOptions {
        listen: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        user: env("ARSTREAM_SERVE_USER").unwrap_or_else(|| "arstream".into()),
        password: env("ARSTREAM_SERVE_PASSWORD"),
        statement_timeout: Duration::from_secs_f64(args.statement_timeout),
        query_memory: args.query_memory.max(1) << 20,
        max_running: args.max_running.max(1),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        max_connections: args.max_connections.max(1),
    };
    let sql = match SqlServer::bind(serve_options).await {
        Ok(sql) => sql,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let addr = sql.local_addr();
    println!(
        "SQL server on {addr} ({}): psql -h {} -p {} -U {}",
        sql.describe(),
        addr.ip(),
        addr.port(),
        env("ARSTREAM_SERVE_USER").unwrap_or_else(|| "arstream".into())
    );
    serve(&plan, global.log_format, None, Some(sql)).await
}
