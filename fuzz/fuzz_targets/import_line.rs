//! Coverage-guided fuzzing of the JSON Lines importer's line validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Ok(v) = videofeed::store::parse_line(line) {
            assert!(!v.id.is_empty() && (0..=1_000_000).contains(&v.duration_seconds));
        }
    }
});
