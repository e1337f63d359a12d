//! Structured logs: `tracing` to stderr at a chosen level, and the same lines fanned out
//! to `rumor monitor` subscribers.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

/// Log lines buffered per monitor before a slow one misses some.
const LOG_BUFFER: usize = 1024;

/// One log line as streamed to monitors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message followed by its fields as `key=value`.
    pub message: String,
}

/// The sending side of the log fan-out; subscribe for a stream of [`LogLine`]s. It also
/// changes the level of the running logger.
#[derive(Clone, Debug)]
pub struct LogFeed {
    tx: broadcast::Sender<LogLine>,
    level: reload::Handle<LevelFilter, Registry>,
}

impl LogFeed {
    /// A new stream of log lines, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }

    /// Logs at `level` from now on (`SIGHUP` with a changed `log_level`).
    pub fn set_level(&self, level: LevelFilter) -> Result<(), String> {
        self.level
            .reload(level)
            .map_err(|e| format!("cannot change the log level: {e}"))
    }
}

/// Parses `trace`, `debug`, `info`, `warn`, `error` (any case) or `off`.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    s.parse::<LevelFilter>().map_err(|_| {
        format!("unknown log level `{s}` (use trace, debug, info, warn, error or off)")
    })
}

/// Installs the global subscriber: lines at `level` or more severe go to stderr and to
/// the returned feed.
pub fn init(level: LevelFilter) -> Result<LogFeed, String> {
    let (tx, _) = broadcast::channel(LOG_BUFFER);
    let (level, handle) = reload::Layer::new(level);
    let feed = LogFeed {
        tx: tx.clone(),
        level: handle,
    };
    tracing_subscriber::registry()
        .with(level)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(FeedLayer { tx })
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(feed)
}

/// Whether a line at `level` passes a monitor's `filter`.
pub fn passes(level: &str, filter: LevelFilter) -> bool {
    level
        .parse::<Level>()
        .is_ok_and(|l| filter >= LevelFilter::from_level(l))
}

/// Copies every event into the broadcast channel, when someone listens.
struct FeedLayer {
    tx: broadcast::Sender<LogLine>,
}

impl<S: Subscriber> Layer<S> for FeedLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        let _ = self.tx.send(LogLine {
            level: meta.level().to_string(),
            target: meta.target().to_owned(),
            message: v.line,
        });
    }
}

#[derive(Default)]
struct LineVisitor {
    line: String,
}

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.line);
            let _ = write!(self.line, "{value:?}");
            if !rest.is_empty() {
                self.line.push(' ');
                self.line.push_str(&rest);
            }
        } else {
            if !self.line.is_empty() {
                self.line.push(' ');
            }
            let _ = write!(self.line, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_filter() {
        assert_eq!(parse_level("DEBUG"), Ok(LevelFilter::DEBUG));
        assert!(parse_level("loud").is_err());
        assert!(passes("WARN", LevelFilter::INFO));
        assert!(!passes("DEBUG", LevelFilter::INFO));
        assert!(!passes("nonsense", LevelFilter::TRACE));
    }
}
