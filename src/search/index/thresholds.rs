//! The sizes and counts at which the rank index takes a faster path: the memo's
//! minimum rows, the prefix table's minimum postings, the score classes' minimum rows, the bounded walk's give-up
//! fraction, the rarest-single rule of word dropping, the delta's phrase memo and
//! the compaction point.
//!
//! Each fast path answers exactly as the plain one does (decision 20), but most
//! start only past 20,000 rows, a size the small test databases never reach. So
//! that tests prove every path where it runs, the `test-hooks` build (tests only,
//! never a release or `install.sh`) reads `VIDEOFEED_TEST_THRESHOLDS` once:
//! `min` puts every threshold at the value that sends the most queries through
//! its path, and `name=value,…` sets single ones. Release builds read nothing:
//! [`get`] returns the shipped constants, so there is no knob and no cost.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

/// The thresholds in force (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A merge (a prefix over several terms, or the rows checked for a phrase of
    /// several tokens) of at least this many rows is kept in the snapshot's memo.
    pub memo_min_rows: usize,
    /// A prefix whose terms (two or more) hold at least this many postings together
    /// gets its distinct rows counted at build time (the prefix table), so that a
    /// query in which it is not the rarest phrase reads it unmerged.
    pub prefix_table_min_rows: usize,
    /// A phrase matching at least this many base rows is ranked by its score
    /// classes (alone), or drives the bounded walk (with others).
    pub classed_min_rows: usize,
    /// The bounded walk gives up for the row-by-row loop once it has checked
    /// 1/`walk_give_up_divisor` of its driver's rows without stopping.
    pub walk_give_up_divisor: usize,
    /// Word dropping ranks only the rarest of the one-phrase queries it considers
    /// (true), or every one of them (false).
    pub rarest_single_only: bool,
    /// Delta rows (over all phrases) the delta's phrase memo keeps.
    pub delta_memo_rows: usize,
    /// A delta of this many rows starts a compaction (a rebuild of the base).
    pub compact_rows: usize,
    /// A delta whose superseded row versions outnumber `delta_repack_live_factor`
    /// times its live ones by more than this is repacked (they and their postings dropped).
    pub delta_repack_slack: usize,
    /// See `delta_repack_slack` (1 shipped: dead versions bounded by live ones + slack).
    pub delta_repack_live_factor: usize,
    /// A delta that reached the compaction point within this many seconds of its
    /// first change is compacted at normal priority at once (sustained writes).
    pub compact_urgent_secs: u64,
}

/// What releases run with.
pub const SHIPPED: Thresholds = Thresholds {
    memo_min_rows: 20_000,
    prefix_table_min_rows: 5_000,
    classed_min_rows: 20_000,
    walk_give_up_divisor: 8,
    rarest_single_only: true,
    delta_memo_rows: 200_000,
    compact_rows: 20_000,
    delta_repack_slack: 1024,
    delta_repack_live_factor: 1,
    compact_urgent_secs: 120,
};

/// Every path as often as it can run: merges of one row kept, every phrase
/// ranked by classes, walks that give up after a sixteenth (so both their
/// outcomes happen), a delta memo small enough to both keep and refuse, a
/// compaction every 16 changed rows, and a delta repacked as soon as it holds a
/// superseded version.
pub const MINIMUM: Thresholds = Thresholds {
    memo_min_rows: 1,
    prefix_table_min_rows: 1,
    classed_min_rows: 1,
    walk_give_up_divisor: 16,
    rarest_single_only: true,
    delta_memo_rows: 64,
    compact_rows: 16,
    delta_repack_slack: 0,
    delta_repack_live_factor: 0,
    compact_urgent_secs: 120,
};

/// The thresholds in force: [`SHIPPED`] in every build without `test-hooks`.
#[cfg(not(feature = "test-hooks"))]
pub fn get() -> &'static Thresholds {
    &SHIPPED
}

/// The thresholds in force: `VIDEOFEED_TEST_THRESHOLDS` read once (test builds only).
#[cfg(feature = "test-hooks")]
pub fn get() -> &'static Thresholds {
    static IN_FORCE: std::sync::LazyLock<Thresholds> = std::sync::LazyLock::new(|| {
        let raw = std::env::var("VIDEOFEED_TEST_THRESHOLDS").unwrap_or_default();
        match parse(&raw) {
            Ok(t) => {
                if t != SHIPPED {
                    log::warn!("test thresholds in force (VIDEOFEED_TEST_THRESHOLDS={raw}): {t:?}");
                }
                t
            }
            Err(e) => {
                log::error!("VIDEOFEED_TEST_THRESHOLDS={raw} ignored: {e}");
                SHIPPED
            }
        }
    });
    &IN_FORCE
}

/// Reads a setting: empty or `shipped`, `min`, or a comma-separated list of
/// `name=value` over either (`min,compact_rows=100`).
///
/// # Errors
/// A name that is no threshold, or a value that is not a number (or a boolean).
pub fn parse(raw: &str) -> Result<Thresholds, String> {
    let mut t = SHIPPED;
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None if part == "min" => t = MINIMUM,
            None if part == "shipped" => t = SHIPPED,
            None => return Err(format!("`{part}` is neither `min`, `shipped` nor `name=value`")),
            Some((name, value)) => {
                let number = || value.parse::<usize>().map_err(|_| format!("{name}: `{value}` is not a count"));
                match name {
                    "memo_min_rows" => t.memo_min_rows = number()?,
                    "classed_min_rows" => t.classed_min_rows = number()?,
                    "prefix_table_min_rows" => t.prefix_table_min_rows = number()?,
                    "walk_give_up_divisor" => t.walk_give_up_divisor = number()?.max(1),
                    "delta_memo_rows" => t.delta_memo_rows = number()?,
                    "compact_rows" => t.compact_rows = number()?.max(1),
                    "delta_repack_slack" => t.delta_repack_slack = number()?,
                    "delta_repack_live_factor" => t.delta_repack_live_factor = number()?,
                    "compact_urgent_secs" => t.compact_urgent_secs = u64::try_from(number()?).unwrap_or(u64::MAX),
                    "rarest_single_only" => {
                        t.rarest_single_only = match value {
                            "1" | "true" => true,
                            "0" | "false" => false,
                            _ => return Err(format!("rarest_single_only: `{value}` is not true or false")),
                        }
                    }
                    _ => return Err(format!("`{name}` is not a threshold")),
                }
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_written() {
        assert_eq!(parse(""), Ok(SHIPPED));
        assert_eq!(parse("min"), Ok(MINIMUM));
        let t = parse("min, compact_rows=100,rarest_single_only=false").unwrap_or(SHIPPED);
        assert_eq!(t.compact_rows, 100);
        assert!(!t.rarest_single_only);
        assert_eq!(t.memo_min_rows, 1);
        assert!(parse("memo_min_rows=x").is_err());
        assert!(parse("nothing=1").is_err());
        assert!(parse("fast").is_err());
    }
}
