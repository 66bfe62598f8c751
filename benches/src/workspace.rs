//! What the benchmarks that run the service share: a working folder with its config and
//! state, `arstream` on it, the state built by `run --once`, the service stopped as a user
//! stops it, and the outputs read as another process reads them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use arrow::array::RecordBatch;

use super::arstream_binary;

/// A benchmark's working folder: its config (pipelines from `pipelines`, the repository's
/// queries) and its state, on one feed.
pub struct Workspace {
    pub dir: PathBuf,
    pub state: PathBuf,
    config: PathBuf,
    feed: PathBuf,
    bin: PathBuf,
}

impl Workspace {
    /// Folder `dir`, emptied, for `feed`; `pipelines` is where the config's pipelines are.
    pub fn new(dir: &Path, feed: &Path, pipelines: &Path) -> anyhow::Result<Workspace> {
        // Absolute: the config's paths are relative to the config file.
        let dir = std::path::absolute(dir)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let repo = std::env::current_dir()?;
        let config = dir.join("arstream.toml");
        std::fs::write(
            &config,
            format!(
                "[engine]\npipelines = \"{}\"\nqueries = \"{}\"\n",
                std::path::absolute(pipelines)?.display(),
                repo.join("queries").display()
            ),
        )?;
        Ok(Workspace {
            state: dir.join("state"),
            dir,
            config,
            feed: feed.to_path_buf(),
            bin: arstream_binary()?,
        })
    }

    /// `arstream` with this config, feed and state.
    pub fn arstream(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config").arg(&self.config);
        cmd.arg("--feed").arg(&self.feed);
        cmd.arg("--state").arg(&self.state);
        cmd
    }

    /// Build the state with `run --once --pipeline pipeline`, its outputs under `out`.
    pub fn run_once(&self, pipeline: &str, out: &Path) -> anyhow::Result<()> {
        let status = (self.arstream())
            .args(["run", "--once", "--pipeline", pipeline, "--out"])
            .arg(out)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "run --once failed on {}",
            self.feed.display()
        );
        Ok(())
    }

    /// Stop `service` with SIGTERM, as a user or a supervisor does, and wait for it.
    pub fn stop(&self, mut service: Child) -> anyhow::Result<()> {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(service.id() as libc::pid_t, libc::SIGTERM);
        }
        service.wait()?;
        Ok(())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The rows of the one Parquet output under `dir` (`kpi_summary/2025-12-31.parquet`; hidden
/// files are writes in flight), as another process reads it; `None` while there is none.
pub fn output_in(dir: &Path) -> Option<RecordBatch> {
    let file: PathBuf = (std::fs::read_dir(dir).ok()?.flatten())
        .map(|entry| entry.path())
        .find(|path| {
            path.extension().is_some_and(|e| e == "parquet")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })?;
    decode(&file)
}

/// The rows of Parquet file `file`; `None` while it cannot be read.
pub fn decode(file: &Path) -> Option<RecordBatch> {
    let bytes = bytes::Bytes::from(std::fs::read(file).ok()?);
    arstream::feed::validate::decode_parquet(&file.display().to_string(), bytes).ok()
}
