//! `videofeed query`: one feed query against the database, the same JSON as `/feed`.

use std::io::{self, Write};

use videofeed::http::{request, response};
use videofeed::search;

use super::{Fatal, fatal, help, parse_args};

pub(super) const QUERY_HELP: &str = "\
videofeed query --db PATH [--q TEXT] [--region CC|GLOBAL] [--limit N] [--offset N] [--channel NAME]
                [--min-duration S] [--max-duration S] [--sort relevance|recent|popular] [--highlight 1]

Runs the /feed search directly against the database and prints the same JSON body
/feed answers for the same parameters (typo corrections and paging included), with
the same settings from the environment as serve (VIDEOFEED_TYPO_FALLBACK, VIDEOFEED_RELAX, VIDEOFEED_TOTALS,
VIDEOFEED_FALLBACK_THUMBNAIL, VIDEOFEED_BROKEN_THUMBNAILS, VIDEOFEED_QUERY_TIMEOUT_MS).
Exit status 2 with the parameter error when the query is invalid.

--q is needed unless browsing (--sort recent|popular, or --channel alone), as for /feed.

Examples:
  videofeed query --db videos.db --q 'lofi hip' --region DE --limit 5 --offset 5
  videofeed query --db videos.db --region DE --sort popular --limit 5";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    const PARAMS: [(&str, &str); 9] = [
        ("--q", "q"),
        ("--region", "region"),
        ("--limit", "limit"),
        ("--offset", "offset"),
        ("--channel", "channel"),
        ("--min-duration", "min_duration"),
        ("--max-duration", "max_duration"),
        ("--sort", "sort"),
        ("--highlight", "highlight"),
    ];
    let flags: Vec<&str> = std::iter::once("--db").chain(PARAMS.iter().map(|(flag, _)| *flag)).collect();
    let a = parse_args(raw, &flags, &[], QUERY_HELP)?;
    if a.help {
        return help(QUERY_HELP);
    }
    let db = a.db(QUERY_HELP)?;
    let mut qs = url::form_urlencoded::Serializer::new(String::new());
    for (flag, param) in PARAMS {
        if let Some(v) = a.get(flag) {
            qs.append_pair(param, &v);
        }
    }
    let query = request::parse(&qs.finish()).map_err(|e| fatal(format!("--{}: {}", e.param, e.message)))?;
    // The serve settings that shape an answer, from the same environment variables.
    let raw_config = videofeed::config::RawServe { db: Some(db.display().to_string()), ..Default::default() };
    let config = videofeed::config::Config::from_raw(&raw_config, &|k| std::env::var(k).ok())?;
    let shared = search::RankIndex::disabled(db.clone(), config.thumbnails.clone());
    let mut reader = search::Reader::with_index(&db, shared)?;
    reader.set_typo_correction(config.typo_fallback);
    reader.set_time_limit(config.query_timeout);
    reader.set_relax(config.relax);
    reader.set_totals(config.totals);
    let answer = reader.answer(&query)?;
    let notes = response::Notes { corrected: &answer.corrected, dropped: &answer.relaxed, total: answer.total };
    let json = response::feed_json_noted(&query, &answer.items, notes)
        .map_err(|e| fatal(format!("could not encode the answer: {e}")))?;
    let mut out = io::stdout().lock();
    out.write_all(&json)?;
    out.write_all(b"\n")?;
    Ok(0)
}
