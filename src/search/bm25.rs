//! The ranking formula, defined once: FTS5's Okapi BM25 (`fts5Bm25Function`,
//! k1 = 1.2, b = 0.75) over the columns of `videos_fts` in their schema order,
//! title weighted 8 and channel 2. The SQL path calls [`sql`]; the rank index
//! repeats the arithmetic with these same constants. A test checks the column
//! order against `sql/schema.sql`. No I/O here.

/// The columns of `videos_fts` in schema order, with their weights.
pub const COLUMNS: [(&str, f64); 2] = [("title", 8.0), ("channel", 2.0)];
/// The title column's weight.
pub const TITLE_WEIGHT: f64 = COLUMNS[0].1;
/// The channel column's weight.
pub const CHANNEL_WEIGHT: f64 = COLUMNS[1].1;
/// The weights as integers, for the prefix merge that sums weighted counts exactly.
pub const TITLE_WEIGHT_INT: u64 = 8;
/// See [`TITLE_WEIGHT_INT`].
pub const CHANNEL_WEIGHT_INT: u64 = 2;
const _: () = assert!(TITLE_WEIGHT == 8.0 && CHANNEL_WEIGHT == 2.0, "the integer weights must equal the weights");
/// BM25's term-frequency saturation, as FTS5 fixes it.
pub const K1: f64 = 1.2;
/// BM25's length normalisation, as FTS5 fixes it.
pub const B: f64 = 0.75;

/// The SQL ranking expression: `bm25(videos_fts, 8.0, 2.0)`.
pub fn sql() -> String {
    let weights: Vec<String> = COLUMNS.iter().map(|(_, w)| format!("{w:?}")).collect();
    format!("bm25(videos_fts, {})", weights.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_call_and_the_schema_agree_with_the_columns() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(sql(), "bm25(videos_fts, 8.0, 2.0)");
        let conn = rusqlite::Connection::open_in_memory()?;
        crate::store::db::register_functions(&conn)?;
        conn.execute_batch(crate::store::db::SCHEMA_SQL)?;
        let names: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('videos_fts') ORDER BY cid")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let expected: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, expected);
        Ok(())
    }
}
