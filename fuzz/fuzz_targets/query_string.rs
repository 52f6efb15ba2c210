//! Coverage-guided fuzzing of the query-string parser and the FTS5 match builder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(q) = videofeed::http::request::parse(&text) {
        assert!((1..=100).contains(&q.limit));
        assert!(q.region.len() == 2 || q.region == "GLOBAL");
        // No match expression only when browsing (issue 35): a channel, or sort=recent|popular.
        let browsing =
            q.channel.is_some() || matches!(q.sort, videofeed::search::Sort::Recent | videofeed::search::Sort::Popular);
        assert!(!q.match_expr.is_empty() || (browsing && q.q.is_empty()), "{q:?}");
    }
    let _ = videofeed::search::tokenize::match_expression(&text);
});
