//! PostgreSQL's own log, shared by the targets that read it: the messages that
//! mark the steps of a promotion, and plain log lines with the `%m [%p] `
//! prefix (`2026-08-21 10:00:06.123 UTC [27] LOG:  message`).
//!
//! PostgreSQL must log in English (`lc_messages` `C` or `en_*`; the local
//! cluster is initialised with locale `C`, CNPG logs in English by default).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timeline::{PromotionStep, Timestamp};

/// The step a PostgreSQL log message marks, if any (not the read-only
/// variant of "ready to accept connections" a hot standby logs).
pub(crate) fn log_mark(message: &str) -> Option<PromotionStep> {
    let m = message.trim_start();
    if m.starts_with("received promote request") {
        Some(PromotionStep::PromoteRequested)
    } else if m.starts_with("redo done at") || m.starts_with("redo is not required") {
        Some(PromotionStep::WalRecoveryEnded)
    } else if m.starts_with("selected new timeline ID") {
        Some(PromotionStep::TimelineSelected)
    } else if m.starts_with("archive recovery complete") {
        Some(PromotionStep::ArchiveRecoveryComplete)
    } else if m.starts_with("database system is ready to accept connections") {
        Some(PromotionStep::ReadyForConnections)
    } else {
        None
    }
}

/// One plain PostgreSQL log line with a `%m` time at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlainLine<'a> {
    /// The time as written, read as if it were UTC, in microseconds since
    /// the epoch (the zone is applied by [`PlainLine::at`]).
    pub naive_micros: i64,
    /// The zone PostgreSQL wrote after the time (`UTC`, `CEST`, `+03`, …).
    pub zone: &'a str,
    /// The message, after `SEVERITY:  `.
    pub message: &'a str,
}

impl PlainLine<'_> {
    /// The line's time, when its zone is UTC or a numeric offset.
    pub(crate) fn at(&self) -> Option<Timestamp> {
        zone_offset_secs(self.zone).and_then(|off| self.at_offset(off))
    }

    /// The line's time for a zone `offset_secs` east of UTC.
    pub(crate) fn at_offset(&self, offset_secs: i64) -> Option<Timestamp> {
        from_epoch_micros(
            self.naive_micros
                .checked_sub(offset_secs.checked_mul(1_000_000)?)?,
        )
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff] ZONE [pid] SEVERITY:  message`, the
/// lines of a server logging with `log_line_prefix = '%m [%p] '` (the text
/// between the zone and `:  ` is not checked). Continuation lines (a tab
/// first) and other shapes give `None`.
pub(crate) fn parse_plain_line(line: &str) -> Option<PlainLine<'_>> {
    let line = line.trim_end_matches(['\r', '\n']);
    let b = line.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b' ') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // A leap second (60) is accepted and folded into the next minute.
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros: i64 = 0;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let rest = line.get(i..)?.strip_prefix(' ')?;
    let (zone, rest) = rest.split_once(' ')?;
    if zone.is_empty() {
        return None;
    }
    let (_, message) = rest.split_once(":  ")?;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(PlainLine {
        naive_micros: secs * 1_000_000 + micros,
        zone,
        message,
    })
}

/// Seconds east of UTC of a zone PostgreSQL writes, for UTC and numeric
/// offsets (`+03`, `-0530`, `+05:30`); `None` for abbreviations such as
/// `CEST`, which are ambiguous.
pub(crate) fn zone_offset_secs(zone: &str) -> Option<i64> {
    if matches!(zone, "UTC" | "GMT" | "Z" | "UCT") {
        return Some(0);
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|&c| c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (h <= 15 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch as a [`Timestamp`].
pub(crate) fn from_epoch_micros(micros: i64) -> Option<Timestamp> {
    let d = Duration::from_micros(micros.unsigned_abs());
    let t: SystemTime = if micros >= 0 {
        UNIX_EPOCH.checked_add(d)?
    } else {
        UNIX_EPOCH.checked_sub(d)?
    };
    Some(Timestamp::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_of_a_promotion() {
        assert_eq!(
            log_mark("received promote request"),
            Some(PromotionStep::PromoteRequested)
        );
        assert_eq!(
            log_mark("redo done at 0/5000060 system usage: CPU: user: 0.00 s"),
            Some(PromotionStep::WalRecoveryEnded)
        );
        assert_eq!(
            log_mark("redo is not required"),
            Some(PromotionStep::WalRecoveryEnded)
        );
        assert_eq!(
            log_mark("selected new timeline ID: 2"),
            Some(PromotionStep::TimelineSelected)
        );
        assert_eq!(
            log_mark("archive recovery complete"),
            Some(PromotionStep::ArchiveRecoveryComplete)
        );
        assert_eq!(
            log_mark("database system is ready to accept connections"),
            Some(PromotionStep::ReadyForConnections)
        );
        // A hot standby's start-up is no mark.
        assert_eq!(
            log_mark("database system is ready to accept read-only connections"),
            None
        );
        assert_eq!(log_mark("checkpoint starting: force"), None);
        assert!(PromotionStep::TimelineSelected.is_promotion_only());
        assert!(!PromotionStep::WalRecoveryEnded.is_promotion_only());
        assert!(!PromotionStep::ReadyForConnections.is_promotion_only());
    }

    #[test]
    fn plain_lines_with_the_m_p_prefix() {
        let line = parse_plain_line(
            "2026-08-21 10:00:07.889 UTC [25] LOG:  database system is ready to accept connections\n",
        )
        .expect("parses");
        assert_eq!(line.zone, "UTC");
        assert_eq!(
            line.message,
            "database system is ready to accept connections"
        );
        assert_eq!(
            line.at().expect("UTC").to_string(),
            "2026-08-21T10:00:07.889000Z"
        );
        // No fraction, a leap year, a numeric zone; the severity is any.
        let l = parse_plain_line("2024-02-29 23:59:59 +0530 [7] FATAL:  terminating").expect("ok");
        assert_eq!(
            l.at().expect("numeric").to_string(),
            "2024-02-29T18:29:59.000000Z"
        );
        let l = parse_plain_line("2026-01-01 00:00:00.5 -03 [7] LOG:  x").expect("ok");
        assert_eq!(
            l.at().expect("numeric").to_string(),
            "2026-01-01T03:00:00.500000Z"
        );
        // An abbreviation needs the offset from elsewhere.
        let l = parse_plain_line("2026-08-21 12:00:07.401 CEST [27] LOG:  redo is not required")
            .expect("ok");
        assert_eq!(l.at(), None);
        assert_eq!(
            l.at_offset(7200).expect("offset").to_string(),
            "2026-08-21T10:00:07.401000Z"
        );
        // Not a plain line.
        for bad in [
            "\tcontinuation of a statement",
            "",
            "2026-08-21T10:00:07.889Z {\"ts\":1}",
            "2026-13-21 10:00:07.889 UTC [25] LOG:  x",
            "2026-08-21 10:00:07. UTC [25] LOG:  x",
            "2026-08-21 10:00:07.889 UTC [25] no severity",
        ] {
            assert_eq!(parse_plain_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset_secs("UTC"), Some(0));
        assert_eq!(zone_offset_secs("+03"), Some(3 * 3600));
        assert_eq!(zone_offset_secs("-05:30"), Some(-(5 * 3600 + 1800)));
        assert_eq!(zone_offset_secs("CET"), None);
        assert_eq!(zone_offset_secs("+3x"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
