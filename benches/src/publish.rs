//! `arstream-bench publish`: the state published as Delta Lake tables at scale. `arstream
//! --offline publish` of the ingest benchmark's state to a new folder (every table written:
//! time, peak memory, size on disk), then the same command again (every table holds the
//! state's generation: nothing to commit).

use std::path::Path;

use super::{command_table, du, measure_with, write_section};

pub fn run(
    feed: &Path,
    state: &Path,
    label: &str,
    data: &Path,
    report: &Path,
) -> anyhow::Result<()> {
    let to = std::path::absolute(data.join("published"))?;
    let _ = std::fs::remove_dir_all(&to);
    let (feed, state, to_text) = (
        feed.to_string_lossy(),
        state.to_string_lossy(),
        to.to_string_lossy(),
    );
    let publish = [
        "--feed",
        &feed,
        "--state",
        &state,
        "--offline",
        "publish",
        "--to",
        &to_text,
    ];
    let loaded = measure_with(
        &[
            "--feed",
            &feed,
            "--state",
            &state,
            "--offline",
            "sql",
            "SELECT count(*) FROM invoices",
        ],
        &[],
    );
    let first = measure_with(&publish, &[]);
    anyhow::ensure!(
        first.stdout.contains("18 table(s) committed"),
        "the publish failed: {}{}",
        first.stdout,
        first.stderr
    );
    let again = measure_with(&publish, &[]);
    anyhow::ensure!(
        again.stdout.contains("0 table(s) committed"),
        "the second publish committed: {}",
        again.stdout
    );
    let mib = |p: &Path| du(p) / 1_048_576.0;
    let mut text = format!(
        "State: the ingest benchmark's ({label}), checkpointed, loaded offline. Published to a new local folder; every table one Delta commit.\n\n"
    );
    text.push_str(&command_table(&[
        (
            "`sql \"SELECT count(*) FROM invoices\"` (loading the state only)",
            &loaded,
        ),
        ("`publish` to a new folder (18 tables written)", &first),
        (
            "`publish` again (every table holds the generation: nothing committed)",
            &again,
        ),
    ]));
    text.push_str(&format!(
        "\nPublished: {:.0} MiB in all; `invoices` {:.0} MiB, `invoices_changes` {:.0} MiB, `payments_changes` {:.0} MiB (the feed itself: {:.0} MiB of Parquet).\n\nFirst publish: `{}`.\n\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- publish`.\n",
        mib(&to),
        mib(&to.join("invoices")),
        mib(&to.join("invoices_changes")),
        mib(&to.join("payments_changes")),
        mib(Path::new(feed.as_ref())),
        first.stdout.lines().next().unwrap_or(""),
    ));
    write_section(report, "publish", &text)?;
    println!("{text}");
    Ok(())
}
