//! Identifiers that label everything a run creates.

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh identifier, unique across processes and calls: wall-clock time, PID
/// and a counter, in lowercase hex (safe in SQL literals, paths and labels).
pub fn new_run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:010x}{:04x}{:02x}",
        (nanos as u64) & 0xff_ffff_ffff,
        std::process::id() & 0xffff,
        n & 0xff
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_hex() {
        let a = super::new_run_id();
        let b = super::new_run_id();
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
