//! Seeds of sets of runs: a leaf, so that the pipeline and the runs above it
//! share them without depending on each other.

/// The seed for a set of runs: `CHAOS_SEED` (decimal or `0x` hex) if set,
/// else fresh.
pub fn base_seed() -> u64 {
    let parsed = std::env::var("CHAOS_SEED").ok().and_then(|s| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    });
    parsed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    })
}

/// Run `i`'s seed from the set's: distinct, well mixed (SplitMix64).
pub fn run_seed(base: u64, i: usize) -> u64 {
    let mut z = base.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
