//! Ingest benchmark: `arstream generate` at scale, then a full catch-up of what it wrote, and
//! a reload of the checkpointed state. Reports time, change rows per second and peak memory
//! of each step (each runs as its own process) and writes them to `docs/benchmarks.md`.
//!
//!     cargo bench --bench ingest                      # 100,000 customers, 24 months
//!     ARSTREAM_BENCH_CUSTOMERS=2000 cargo bench --bench ingest   # a quick run
//!
//! The feed is kept in `target/bench-data/` and reused when it was made with the same sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// Wall time and peak resident memory of one child process.
struct Measured {
    seconds: f64,
    peak_mib: f64,
    stdout: String,
}

fn measure(args: &[&str]) -> Measured {
    let out_path = std::env::temp_dir().join(format!("arstream-bench-{}.out", std::process::id()));
    let out_file = std::fs::File::create(&out_path).expect("create output file");
    let started = Instant::now();
    // Reaped by wait4 below, which also gives the child's own peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .args(args)
        .stdout(out_file)
        .spawn()
        .expect("start arstream");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid pointers; reaps it and fills its usage.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "arstream {args:?} failed:\n{stdout}"
    );
    Measured {
        seconds,
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let customers = env_or("ARSTREAM_BENCH_CUSTOMERS", 100_000);
    let months = env_or("ARSTREAM_BENCH_MONTHS", 24);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var("ARSTREAM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/bench-data"));
    let feed = data.join(format!("feed-{customers}x{months}"));
    let state = data.join(format!("state-{customers}x{months}"));
    let (c, m) = (customers.to_string(), months.to_string());

    let generated = if feed.join("DONE").exists() {
        println!("reusing {}", feed.display());
        None
    } else {
        let _ = std::fs::remove_dir_all(&feed);
        let g = measure(&[
            "generate",
            "--out",
            feed.to_str().unwrap(),
            "--customers",
            &c,
            "--months",
            &m,
            "--seed",
            "1",
        ]);
        std::fs::write(feed.join("DONE"), &g.stdout).unwrap();
        println!("{}", g.stdout);
        Some(g)
    };
    let summary = std::fs::read_to_string(feed.join("DONE")).unwrap_or_default();
    let rows: u64 = summary
        .split("files (")
        .nth(1)
        .and_then(|s| s.split(", ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let invoices: u64 = summary
        .lines()
        .find(|l| l.trim_start().starts_with("invoices"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);

    let _ = std::fs::remove_dir_all(&state);
    let ingest = measure(&[
        "--feed",
        feed.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "run",
    ]);
    println!("{}", ingest.stdout);
    let reload = measure(&[
        "--feed",
        feed.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--offline",
        "status",
    ]);
    let disk = du(&feed);

    let mut report = String::new();
    report.push_str(&format!(
        "Feed: `arstream generate --customers {customers} --months {months} --seed 1`: {rows} change rows, {invoices} invoice changes, {:.0} MB of Parquet.\n\n",
        disk / 1e6
    ));
    report.push_str("| step | time | change rows / s | peak memory |\n|---|---|---|---|\n");
    if let Some(g) = &generated {
        report.push_str(&format!(
            "| generate | {:.1} s | {:.0} | {:.0} MiB |\n",
            g.seconds,
            rows as f64 / g.seconds,
            g.peak_mib
        ));
    }
    report.push_str(&format!(
        "| full ingest (`run`, new state) | {:.1} s | {:.0} | {:.0} MiB |\n",
        ingest.seconds,
        rows as f64 / ingest.seconds,
        ingest.peak_mib
    ));
    report.push_str(&format!(
        "| reload of the checkpointed state (`--offline status`) | {:.1} s | | {:.0} MiB |\n\n",
        reload.seconds, reload.peak_mib
    ));
    let detail: Vec<&str> = ingest.stdout.lines().take(2).collect();
    report.push_str(&format!(
        "Where the ingest time went:\n\n    {}\n",
        detail.join("\n    ")
    ));
    write_section(&root.join("docs/benchmarks.md"), "ingest", &report);
    println!("{report}");
}

fn du(path: &Path) -> f64 {
    let mut total = 0.0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += du(&p);
            } else if let Ok(m) = e.metadata() {
                total += m.len() as f64;
            }
        }
    }
    total
}

/// Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` (appended when absent).
fn write_section(path: &Path, name: &str, body: &str) {
    let machine = format!(
        "Measured {} on {} cores ({}), release build.\n\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::env::consts::ARCH
    );
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let block = format!("{start}\n{machine}{body}{end}");
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let text = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) => format!("{}{block}{}", &text[..a], &text[b + end.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    std::fs::write(path, text).unwrap();
}
