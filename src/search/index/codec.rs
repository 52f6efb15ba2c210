//! The postings codec: ascending row ids written as the gaps between them, each
//! gap a LEB128 varint (seven bits a byte, the high bit set on every byte but a
//! gap's last). Rows of one score class of a common prefix lie close together
//! (hundreds of thousands among ten million), so most gaps take one or two bytes
//! instead of a `u32`'s four. Decoding is sequential, which is how a class is read:
//! from its first row until the page is full. Pure functions over bytes.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// Appends `rows` (ascending) to `out` as gaps; the first is written whole.
pub fn encode(rows: &[u32], out: &mut Vec<u8>) {
    let mut last = 0u32;
    for &r in rows {
        let mut gap = r.wrapping_sub(last);
        last = r;
        loop {
            let low = u8::try_from(gap & 0x7F).unwrap_or(0);
            gap >>= 7;
            if gap == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
    }
}

/// The row ids [`encode`] wrote into `bytes`, in order. Stops at the end of the
/// bytes; a truncated last gap (a damaged file) ends the rows there.
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    bytes: &'a [u8],
    at: usize,
    last: u32,
}

impl<'a> Rows<'a> {
    /// The rows of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Rows { bytes, at: 0, last: 0 }
    }
}

impl Iterator for Rows<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let mut gap = 0u32;
        let mut shift = 0u32;
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            gap |= u32::from(byte & 0x7F).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        self.last = self.last.wrapping_add(gap);
        Some(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_as_written_and_small_gaps_take_a_byte() {
        let rows = [0u32, 1, 2, 130, 131, 20_000, 1 << 28, u32::MAX - 1, u32::MAX];
        let mut bytes = Vec::new();
        encode(&rows, &mut bytes);
        assert_eq!(Rows::new(&bytes).collect::<Vec<_>>(), rows);
        let dense: Vec<u32> = (1_000_000..1_010_000).step_by(3).collect();
        let mut out = Vec::new();
        encode(&dense, &mut out);
        assert!(out.len() < dense.len() + 4, "{} bytes for {} rows", out.len(), dense.len());
        assert_eq!(Rows::new(&out).collect::<Vec<_>>(), dense);
    }

    #[test]
    fn damaged_bytes_end_the_rows_without_a_panic() {
        assert_eq!(Rows::new(&[0x80, 0x80]).count(), 0);
        assert_eq!(Rows::new(&[5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1]).count(), 2);
        assert_eq!(Rows::new(&[]).count(), 0);
    }
}
