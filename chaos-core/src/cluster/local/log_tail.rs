//! The nodes' PostgreSQL logs, tailed: the `promotion ended` mark of the local
//! cluster's failovers, and the finer steps of a promotion.
//!
//! Every node logs to `<node dir>/pglog/postgresql.log` with
//! `log_line_prefix = '%m [%p] '` (see `config.rs`). Each log is read from
//! its end as it was when the stream started, its size polled every
//! [`POLL`]; a file replaced or truncated is read again from its start.
//! Recognised messages become events named as the CNPG target names them
//! ([`PromotionStep`]s, detail `node: message`), timed by the
//! line's own millisecond timestamp. A "database system is ready to accept
//! connections" that follows a promotion step on the same node (promote
//! request, new timeline, archive recovery complete) also ends the
//! `promotion` phase (detail: the node); a plain start-up does not.

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use futures::stream::BoxStream;

use crate::cluster::pglog::{self, PlainLine};
use crate::timeline::{Event, EventKind, Phase, PromotionStep, Timestamp};

/// How often each log's size is checked.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// At most this much of a log is read per poll (the rest on the next ones).
const MAX_READ: u64 = 1 << 20;

/// A line longer than this is dropped.
const MAX_LINE: usize = 1 << 20;

/// The promotion marks of the nodes `(name, log path)`, read every `every`.
/// The logs are read with plain file I/O on the stream's task: they are
/// small, local files (not on the nodes' throttled filesystems). Dropping the
/// stream stops it; it has no task of its own.
pub(crate) fn promotion_events(
    nodes: Vec<(String, PathBuf)>,
    every: Duration,
) -> BoxStream<'static, Event> {
    let logs: Vec<NodeLog> = nodes
        .into_iter()
        .map(|(name, path)| NodeLog::from_end(name, path))
        .collect();
    Box::pin(futures::stream::unfold(
        (logs, VecDeque::<Event>::new()),
        move |(mut logs, mut pending)| async move {
            loop {
                if let Some(e) = pending.pop_front() {
                    return Some((e, (logs, pending)));
                }
                tokio::time::sleep(every).await;
                let mut out = Vec::new();
                for log in &mut logs {
                    log.poll(&mut out);
                }
                out.sort_by_key(|e| e.at);
                pending.extend(out);
            }
        },
    ))
}

/// Where reading a file stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    inode: u64,
    offset: u64,
}

/// One node's log.
#[derive(Debug)]
pub(crate) struct NodeLog {
    name: String,
    path: PathBuf,
    /// `None` until the file exists (then it is read from its start).
    pos: Option<Position>,
    /// Bytes of a line not yet complete.
    partial: Vec<u8>,
    lines: LineMarks,
}

impl NodeLog {
    /// A log read from its current end (from its start if it does not exist
    /// yet).
    pub(crate) fn from_end(name: String, path: PathBuf) -> Self {
        let pos = fs::metadata(&path).ok().map(|m| Position {
            inode: m.ino(),
            offset: m.len(),
        });
        NodeLog {
            lines: LineMarks::new(name.clone()),
            name,
            path,
            pos,
            partial: Vec::new(),
        }
    }

    /// Reads what was appended since the last call; pushes the marks it makes.
    pub(crate) fn poll(&mut self, out: &mut Vec<Event>) {
        let Ok(meta) = fs::metadata(&self.path) else {
            return;
        };
        let offset = match self.pos {
            Some(p) if p.inode == meta.ino() && meta.len() >= p.offset => p.offset,
            // New, replaced or truncated: from the start.
            _ => {
                self.partial.clear();
                0
            }
        };
        self.pos = Some(Position {
            inode: meta.ino(),
            offset,
        });
        if meta.len() <= offset {
            return;
        }
        let mut bytes = Vec::new();
        let read = fs::File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.take((meta.len() - offset).min(MAX_READ))
                .read_to_end(&mut bytes)
        });
        let n = match read {
            Ok(n) => n as u64,
            Err(e) => {
                tracing::debug!(node = %self.name, path = %self.path.display(), error = %e, "PostgreSQL log unreadable");
                return;
            }
        };
        self.pos = Some(Position {
            inode: meta.ino(),
            offset: offset + n,
        });
        self.partial.extend_from_slice(&bytes);
        let now = Timestamp::now();
        let mut start = 0;
        while let Some(len) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.partial[start..start + len]);
            self.lines.on_line(&line, now, out);
            start += len + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
    }
}

/// The marks of one node's log lines, in order.
#[derive(Debug)]
pub(crate) struct LineMarks {
    node: String,
    /// A promotion step was seen since the last start-up or ready message.
    promoting: bool,
    /// Offsets of zone abbreviations (`CEST`), estimated from the clock.
    zones: Vec<(String, i64)>,
}

impl LineMarks {
    /// Nothing seen yet on `node`.
    pub(crate) fn new(node: String) -> Self {
        LineMarks {
            node,
            promoting: false,
            zones: Vec::new(),
        }
    }

    /// Pushes the marks `line`, read at `now`, makes.
    pub(crate) fn on_line(&mut self, line: &str, now: Timestamp, out: &mut Vec<Event>) {
        let Some(plain) = pglog::parse_plain_line(line) else {
            return;
        };
        let message = plain.message.trim();
        if message.starts_with("starting PostgreSQL") {
            self.promoting = false;
        }
        let Some(mark) = pglog::log_mark(message) else {
            return;
        };
        let Some(at) = self.time_of(&plain, now) else {
            return;
        };
        out.push(Event::new(
            EventKind::PromotionStep(mark),
            at,
            Some(format!("{}: {message}", self.node)),
        ));
        if mark.is_promotion_only() {
            self.promoting = true;
        } else if mark == PromotionStep::ReadyForConnections && std::mem::take(&mut self.promoting)
        {
            out.push(Event::new(
                EventKind::PhaseEnded(Phase::Promotion),
                at,
                Some(self.node.clone()),
            ));
        }
    }

    /// The line's time. A zone abbreviation (a `log_timezone` other than
    /// UTC) has no fixed offset: it is estimated, once per abbreviation, as
    /// the difference to this machine's clock when the line is read, rounded
    /// to a quarter of an hour (the line was written a moment before).
    fn time_of(&mut self, plain: &PlainLine<'_>, now: Timestamp) -> Option<Timestamp> {
        if let Some(at) = plain.at() {
            return Some(at);
        }
        let offset = match self.zones.iter().find(|(z, _)| z == plain.zone) {
            Some((_, off)) => *off,
            None => {
                let now_micros =
                    (now.ms_since(Timestamp::from(std::time::UNIX_EPOCH)) * 1000.0).round() as i64;
                let quarter = 900 * 1_000_000;
                let diff = plain.naive_micros - now_micros;
                let off = (diff as f64 / quarter as f64).round() as i64 * 900;
                self.zones.push((plain.zone.to_string(), off));
                off
            }
        };
        plain.at_offset(offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    // A replica of PostgreSQL 15 promoted by Patroni, as the local cluster logs it.
    const PROMOTION: &str = "\
2026-11-27 22:20:01.100 UTC [4242] LOG:  received promote request
2026-11-27 22:20:01.101 UTC [4244] FATAL:  terminating walreceiver process due to administrator command
2026-11-27 22:20:01.102 UTC [4242] LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 9.87 s
2026-11-27 22:20:01.103 UTC [4242] LOG:  last completed transaction was at log time 2026-11-27 22:19:55.5+00
2026-11-27 22:20:01.110 UTC [4242] LOG:  selected new timeline ID: 2
2026-11-27 22:20:01.180 UTC [4242] LOG:  archive recovery complete
2026-11-27 22:20:01.190 UTC [4240] LOG:  checkpoint starting: force
2026-11-27 22:20:01.205 UTC [4238] LOG:  database system is ready to accept connections
";

    // A replica restarted (a heal), then a primary booted: no promotion.
    const STARTUPS: &str = "\
2026-11-27 22:21:00.000 UTC [5000] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-27 22:21:00.050 UTC [5002] LOG:  entering standby mode
2026-11-27 22:21:00.120 UTC [5000] LOG:  database system is ready to accept read-only connections
2026-11-27 22:22:00.000 UTC [6000] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-27 22:22:00.010 UTC [6002] LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s
2026-11-27 22:22:00.100 UTC [6000] LOG:  database system is ready to accept connections
";

    fn marks(text: &str) -> Vec<(String, String, Option<String>)> {
        let mut m = LineMarks::new("node2".into());
        let mut out = Vec::new();
        for line in text.lines() {
            m.on_line(line, Timestamp::now(), &mut out);
        }
        out.into_iter()
            .map(|e| (e.name().to_string(), e.at.to_string(), e.detail))
            .collect()
    }

    #[test]
    fn a_promotion_ends_with_ready_for_connections() {
        let got = marks(PROMOTION);
        let names: Vec<&str> = got.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "promote requested",
                "wal recovery ended",
                "timeline selected",
                "archive recovery complete",
                "ready for connections",
                "promotion ended",
            ]
        );
        // Timed by the log line, not by when it was read.
        assert_eq!(got[5].1, "2026-11-27T22:20:01.205000Z");
        assert_eq!(got[5].2.as_deref(), Some("node2"));
        assert_eq!(
            got[2].2.as_deref(),
            Some("node2: selected new timeline ID: 2")
        );
    }

    #[test]
    fn start_ups_are_no_promotion() {
        let got = marks(STARTUPS);
        assert!(got.iter().all(|(n, ..)| n != "promotion ended"), "{got:?}");
        // A promotion step before a restart does not carry over.
        let interrupted = "\
2026-11-27 22:20:01.100 UTC [4242] LOG:  received promote request
2026-11-27 22:21:00.000 UTC [5000] LOG:  starting PostgreSQL 15.18
2026-11-27 22:21:00.100 UTC [5000] LOG:  database system is ready to accept connections
";
        assert!(
            marks(interrupted)
                .iter()
                .all(|(n, ..)| n != "promotion ended")
        );
    }

    #[test]
    fn a_zone_abbreviation_is_placed_by_the_clock() {
        let mut m = LineMarks::new("node1".into());
        let now = pglog::parse_plain_line("2026-11-27 22:20:01.300 UTC [1] LOG:  x")
            .and_then(|l| l.at())
            .expect("time");
        let mut out = Vec::new();
        m.on_line(
            "2026-11-27 23:20:01.205 CET [1] LOG:  archive recovery complete",
            now,
            &mut out,
        );
        assert_eq!(out[0].at.to_string(), "2026-11-27T22:20:01.205000Z");
    }

    #[test]
    fn the_tail_reads_appended_lines_and_survives_truncation() {
        let dir = std::env::temp_dir().join(format!("chaos-unit-logtail-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("postgresql.log");
        // Written before the tail starts: ignored.
        fs::write(&path, PROMOTION).expect("write");
        let mut log = NodeLog::from_end("node2".into(), path.clone());
        let mut out = Vec::new();
        log.poll(&mut out);
        assert!(out.is_empty(), "{out:?}");
        // Appended in two pieces, the last line split across them.
        let (a, b) = PROMOTION.split_at(PROMOTION.len() - 30);
        let append = |text: &str| {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open");
            f.write_all(text.as_bytes()).expect("append");
        };
        append(a);
        log.poll(&mut out);
        assert_eq!(out.len(), 4, "{out:?}");
        append(b);
        log.poll(&mut out);
        assert_eq!(out.len(), 6, "{out:?}");
        assert_eq!(out[5].kind, EventKind::PhaseEnded(Phase::Promotion));
        // Truncated (or replaced): read again from the start.
        fs::write(&path, &PROMOTION[..PROMOTION.find("redo").expect("redo")]).expect("truncate");
        out.clear();
        log.poll(&mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].kind,
            EventKind::PromotionStep(PromotionStep::PromoteRequested)
        );
        // A log that did not exist when the tail started is read whole.
        let missing = dir.join("later.log");
        let mut later = NodeLog::from_end("node3".into(), missing.clone());
        fs::write(&missing, PROMOTION).expect("write");
        out.clear();
        later.poll(&mut out);
        assert_eq!(out.len(), 6, "{out:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
