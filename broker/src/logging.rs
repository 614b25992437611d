//! Log output: `tracing` events to stderr, as text for people or JSON for
//! collectors (`log.format`), filtered per module (`RUST_LOG` syntax).
//!
//! ```text
//! filter = RUST_LOG (if set) | SLUICE_LOG (if set, older name) | log.level
//!          + "raft=warn" unless the filter names raft itself
//! ```
//!
//! raft-rs logs every vote and term change at info through `slog`
//! (`controller::raft_logger`, target `raft::…`); the broker logs the
//! changes that matter (controller elected, node fenced) itself, so raft's
//! own lines are shown from warn up unless asked for.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter directives in force, from the environment and `log.level`.
pub fn filter_directives(
    log_level: &str,
    rust_log: Option<&str>,
    sluice_log: Option<&str>,
) -> String {
    let chosen = rust_log
        .or(sluice_log)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(log_level)
        .trim();
    if chosen.contains("raft") {
        chosen.to_string()
    } else {
        format!("{chosen},raft=warn")
    }
}

/// Installs the global subscriber. Fails (naming the bad directive) when
/// the filter does not parse; a second call is a no-op.
pub fn init(log_level: &str, format: LogFormat) -> Result<(), String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let sluice_log = std::env::var("SLUICE_LOG").ok();
    let directives = filter_directives(log_level, rust_log.as_deref(), sluice_log.as_deref());
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| format!("invalid log filter {directives:?} (log.level / RUST_LOG): {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (tests that start several brokers in one process):
    // the first subscriber stays.
    drop(installed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_and_raft_is_quieted_unless_named() {
        assert_eq!(filter_directives("info", None, None), "info,raft=warn");
        assert_eq!(
            filter_directives("info", Some("debug"), Some("warn")),
            "debug,raft=warn"
        );
        assert_eq!(
            filter_directives("info", None, Some("warn")),
            "warn,raft=warn"
        );
        assert_eq!(
            filter_directives("info,raft=debug", None, None),
            "info,raft=debug"
        );
        assert_eq!(filter_directives("info", Some(" "), None), "info,raft=warn");
    }
}
