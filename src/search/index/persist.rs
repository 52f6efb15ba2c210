//! The rank index on disk, shared by every process on the box: a [`Snapshot`]
//! written next to the database (`<db>.rank`) and mapped read-only, so N
//! responders (LiteSpeed starts one per httpd worker) keep one copy in the
//! page cache instead of N on their heaps, and a process that finds a valid
//! file answers from it at once instead of building for seconds.
//!
//! Format (version 3, native byte order, recorded): a 64-byte header (magic,
//! version, flags, the database file's identity, the generation, row and
//! token totals, postings, a checksum of everything after the header), then
//! sections, each a `u64` byte length, the bytes, and padding to 8. The large
//! arrays (postings, row sizes, the forward index, per-row columns) are read in
//! place from the mapping; the small ones (terms, region and channel names)
//! are copied. Version 3 added the prefix table (`prefixes`) as the last
//! sections: a file of an earlier version is rebuilt, never read.
//!
//! Safety of use: the file is written under a temporary name and renamed into
//! place (a mapped file is never changed: a new one replaces it). A file whose
//! checksum, sizes or header do not match is never used (a torn write, another
//! format, another database file); one at an older generation is used only
//! when the change log can bring it up to date (the caller checks), else the
//! index is rebuilt and the file replaced.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::HashMap;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::arr::Arr;
use super::columns::{BaseCols, Inexact};
use super::prefixes::PrefixTable;
use super::snapshot::{Forward, Lists, Snapshot};
use crate::sys::{Mmap, Plain, as_bytes};

const MAGIC: [u8; 8] = *b"VFRANK\0\x01";
const VERSION: u32 = 3;
const HEADER: usize = 64;
const LITTLE_ENDIAN: u32 = 1;
const WIDE_FORWARD: u32 = 2;

/// Where the index file of database `db` lives: `<db>.rank`, next to it.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".rank");
    PathBuf::from(name)
}

/// A running checksum over 32-byte blocks, four independent 8-byte lanes (bytes are
/// buffered to whole blocks). Four lanes, not one chain: a serial multiply-and-mix per
/// word took ~25 ms over a 1M-video index at start-up; the lanes' multiplies overlap.
struct Sum {
    lanes: [u64; 4],
    buf: [u8; 32],
    n: usize,
}

/// Mixes one word into a lane.
fn mix(lane: u64, w: u64) -> u64 {
    let x = (lane ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// The four little-endian words of a 32-byte block.
fn block_words(b: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (w, chunk) in words.iter_mut().zip(b.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        *w = u64::from_le_bytes(a);
    }
    words
}

impl Sum {
    fn new() -> Sum {
        Sum {
            lanes: [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4, 0x27d4_eb2f_1656_67c5, 0x1656_67c5_27d4_eb2f],
            buf: [0; 32],
            n: 0,
        }
    }

    fn block(&mut self, b: &[u8; 32]) {
        let [w0, w1, w2, w3] = block_words(b);
        let [l0, l1, l2, l3] = self.lanes;
        self.lanes = [mix(l0, w0), mix(l1, w1), mix(l2, w2), mix(l3, w3)];
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.n > 0 {
            let take = (32 - self.n).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.n..self.n + take) {
                dst.copy_from_slice(head);
            }
            self.n += take;
            bytes = rest;
            if self.n < 32 {
                return;
            }
            let full = self.buf;
            self.block(&full);
            self.n = 0;
        }
        let mut blocks = bytes.chunks_exact(32);
        for b in &mut blocks {
            let mut a = [0u8; 32];
            a.copy_from_slice(b);
            self.block(&a);
        }
        let rest = blocks.remainder();
        if let Some(dst) = self.buf.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.n = rest.len();
    }

    fn finish(mut self) -> u64 {
        // The partial block, zero-padded, with its length in the last word's top byte.
        let n = self.n as u64;
        let mut last = [0u8; 32];
        if let (Some(dst), Some(src)) = (last.get_mut(..self.n), self.buf.get(..self.n)) {
            dst.copy_from_slice(src);
        }
        if self.n > 0 {
            self.block(&last);
        }
        let [l0, l1, l2, l3] = self.lanes;
        mix(mix(mix(mix(n, l0), l1), l2), l3)
    }
}

/// Writes sections after the header, summing what it writes.
struct Out {
    file: io::BufWriter<std::fs::File>,
    sum: Sum,
    written: usize,
}

impl Out {
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.sum.update(bytes);
        self.written += bytes.len();
        Ok(())
    }

    fn put<T: Plain>(&mut self, items: &[T]) -> io::Result<()> {
        let bytes = as_bytes(items);
        self.raw(&(bytes.len() as u64).to_le_bytes())?;
        self.raw(bytes)?;
        let pad = (8 - bytes.len() % 8) % 8;
        self.raw([0u8; 8].get(..pad).unwrap_or_default())
    }

    /// Strings as one blob and their end offsets.
    fn strings<'a>(&mut self, items: impl Iterator<Item = &'a str>) -> io::Result<()> {
        let mut blob = Vec::new();
        let mut ends = Vec::new();
        for s in items {
            blob.extend_from_slice(s.as_bytes());
            ends.push(u32::try_from(blob.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?);
        }
        self.put(&blob)?;
        self.put(&ends)
    }
}

/// Writes `snap` (built from the database whose file identity is `db_file`) to
/// `path`, atomically: a temporary file next to it, renamed into place.
///
/// # Errors
/// I/O errors (a read-only directory, a full disk); the old file, if any, stays.
/// The temporary file is created exclusively under a random name (two processes, or
/// two containers with equal pids, never write one inode) and read-only (0444): the
/// file is mapped by every process, and a writer truncating it in place would bring
/// them down (SIGBUS).
pub fn save(snap: &Snapshot, db_file: u64, path: &Path) -> io::Result<()> {
    let (file, tmp) = crate::sys::create_temp_beside(path, "rank", 0o444)?;
    let result = write_to(snap, db_file, file).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_to(snap: &Snapshot, db_file: u64, file: std::fs::File) -> io::Result<()> {
    let mut out = Out { file: io::BufWriter::with_capacity(1 << 20, file), sum: Sum::new(), written: 0 };
    out.file.write_all(&[0u8; HEADER])?;
    out.strings(snap.terms.iter().map(|t| &**t))?;
    out.put(&snap.lists.rowids)?;
    out.put(&snap.lists.counts)?;
    out.put(&snap.lists.ends)?;
    let columns: [Vec<u32>; 4] = [
        snap.overflow.iter().map(|o| o.0).collect(),
        snap.overflow.iter().map(|o| o.1).collect(),
        snap.overflow.iter().map(|o| u32::from(o.2)).collect(),
        snap.overflow.iter().map(|o| u32::from(o.3)).collect(),
    ];
    for c in &columns {
        out.put(c)?;
    }
    out.put(&snap.doc_len)?;
    out.put(&snap.title_len)?;
    out.put(&snap.doc_start)?;
    let wide = match &snap.forward {
        Forward::Narrow(v) => {
            out.put(v)?;
            false
        }
        Forward::Wide(v) => {
            out.put(v)?;
            true
        }
    };
    out.put(&snap.region)?;
    out.strings(snap.regions.iter().map(String::as_str))?;
    let cols = &snap.cols;
    out.put(&cols.duration)?;
    out.put(&cols.published)?;
    out.put(&cols.views)?;
    out.put(&cols.channel)?;
    out.strings(cols.channel_names.iter().map(|n| &**n))?;
    let i = cols.inexact;
    out.put(&[u8::from(i.duration), u8::from(i.published), u8::from(i.views), u8::from(i.channel)])?;
    out.put(&snap.prefixes.first)?;
    out.put(&snap.prefixes.end)?;
    out.put(&snap.prefixes.rows)?;
    out.put(&snap.prefixes.class_end)?;
    out.put(&snap.prefixes.class_freq)?;
    out.put(&snap.prefixes.class_len)?;
    out.put(&snap.prefixes.class_byte_end)?;
    out.put(&snap.prefixes.class_bytes)?;

    let checksum = std::mem::replace(&mut out.sum, Sum::new()).finish();
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    let flags = if cfg!(target_endian = "little") { LITTLE_ENDIAN } else { 0 } | if wide { WIDE_FORWARD } else { 0 };
    header.extend_from_slice(&flags.to_le_bytes());
    for v in [db_file, snap.generation as u64, snap.n_rows as u64, snap.n_tokens as u64, snap.postings as u64, checksum]
    {
        header.extend_from_slice(&v.to_le_bytes());
    }
    let mut file = out.file.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(&header)?;
    file.flush()
}

/// Reads sections from a mapping.
struct In {
    map: Arc<Mmap>,
    pos: usize,
}

impl In {
    fn take<T: Plain>(&mut self) -> Result<Arr<T>, String> {
        let size = std::mem::size_of::<T>();
        let len_bytes = self
            .map
            .bytes()
            .get(self.pos..self.pos + 8)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a)
            })
            .ok_or("truncated (a section length)")?;
        let len_bytes = usize::try_from(len_bytes).map_err(|_| "a section is too long")?;
        if len_bytes % size != 0 {
            return Err("a section's length is not whole items".into());
        }
        let off = self.pos + 8;
        let len = len_bytes / size;
        if self.map.slice::<T>(off, len).len() != len {
            return Err("truncated (a section)".into());
        }
        self.pos = off + len_bytes + (8 - len_bytes % 8) % 8;
        Ok(Arr::Mapped { map: Arc::clone(&self.map), off, len })
    }

    fn strings(&mut self) -> Result<Vec<Box<str>>, String> {
        let blob = self.take::<u8>()?;
        let ends = self.take::<u32>()?;
        let mut out = Vec::with_capacity(ends.len());
        let mut start = 0usize;
        for &end in ends.iter() {
            let end = end as usize;
            let bytes = blob.get(start..end).ok_or("a string runs past its blob")?;
            out.push(std::str::from_utf8(bytes).map_err(|_| "a string is not UTF-8")?.into());
            start = end;
        }
        Ok(out)
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes.get(at..at + 8)?);
    Some(u64::from_le_bytes(a))
}

/// The snapshot in the file at `path`, mapped, if the file is there, complete and
/// of database file `db_file`: `Ok(None)` when there is no file, `Err(why)` when
/// there is one that must not be used (then rebuild and replace it).
///
/// # Errors
/// What is wrong with the file, in words.
pub fn load(path: &Path, db_file: u64) -> Result<Option<Snapshot>, String> {
    let snap = load_unverified(path, db_file)?;
    if let Some(snap) = &snap {
        verify(snap)?;
    }
    Ok(snap)
}

/// The checksum of the file `snap` maps, compared with its header's: on a mismatch
/// the mapping is marked damaged ([`Snapshot::damage`] says so from then on, and the
/// index lets go of it) and the error says why. Nothing to check for a snapshot in
/// memory. Reads the whole file once (about 0.2 s a gigabyte): the start path maps
/// a file and answers at once, verifying it meanwhile on another thread
/// ([`load_unverified`]).
///
/// # Errors
/// The mismatch, in words.
pub fn verify(snap: &Snapshot) -> Result<(), String> {
    let Some(map) = snap.doc_len.mapping() else { return Ok(()) };
    let bytes = map.bytes();
    let expected = word(bytes, 16 + 8 * 5).ok_or("truncated (the header)")?;
    let mut sum = Sum::new();
    sum.update(bytes.get(HEADER..).unwrap_or_default());
    if sum.finish() != expected {
        let why = "its checksum does not match (a torn or damaged write)".to_owned();
        map.mark_damaged(why.clone());
        return Err(why);
    }
    Ok(())
}

/// As [`load`] without the checksum: the header, the format and every section's
/// bounds are checked (nothing read from it can go out of bounds), but not the
/// contents; call [`verify`] before trusting it, or soon after.
///
/// # Errors
/// What is wrong with the file, in words.
pub fn load_unverified(path: &Path, db_file: u64) -> Result<Option<Snapshot>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let map = Arc::new(Mmap::map(&file).map_err(|e| format!("cannot map it: {e}"))?);
    let bytes = map.bytes();
    if bytes.get(..8) != Some(&MAGIC[..]) {
        return Err("not a videofeed rank index file".into());
    }
    let small = |at: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(bytes.get(at..at + 4)?);
        Some(u32::from_le_bytes(a))
    };
    let (version, flags) = (small(8).unwrap_or(0), small(12).unwrap_or(0));
    if version != VERSION {
        return Err(format!("format version {version}, this videofeed writes {VERSION}"));
    }
    if (flags & LITTLE_ENDIAN != 0) != cfg!(target_endian = "little") {
        return Err("written on a machine of the other byte order".into());
    }
    let header: Vec<u64> = (0..6).filter_map(|k| word(bytes, 16 + 8 * k)).collect();
    let [file_id, generation, n_rows, n_tokens, postings, _checksum] = header.as_slice() else {
        return Err("truncated (the header)".into());
    };
    if *file_id != db_file {
        return Err("written for another database file".into());
    }
    let mut input = In { map: Arc::clone(&map), pos: HEADER };
    let terms = input.strings()?;
    let rowids = input.take::<u32>()?;
    let counts = input.take::<u8>()?;
    let ends = input.take::<u32>()?;
    if ends.len() != terms.len() || counts.len() != rowids.len() {
        return Err("postings and terms disagree".into());
    }
    if ends.windows(2).any(|w| w.first() > w.last()) || ends.last().is_some_and(|&e| e as usize != rowids.len()) {
        return Err("a posting list runs past the postings".into());
    }
    let lists = Lists { rowids, counts, ends };
    let o = [input.take::<u32>()?, input.take::<u32>()?, input.take::<u32>()?, input.take::<u32>()?];
    let [ot, or, oa, ob] = &o;
    let overflow: Vec<(u32, u32, u16, u16)> = ot
        .iter()
        .zip(or.iter())
        .zip(oa.iter().zip(ob.iter()))
        .map(|((&t, &r), (&a, &b))| (t, r, u16::try_from(a).unwrap_or(u16::MAX), u16::try_from(b).unwrap_or(u16::MAX)))
        .collect();
    let doc_len = input.take::<u32>()?;
    let title_len = input.take::<u32>()?;
    let doc_start = input.take::<u32>()?;
    let forward = if flags & WIDE_FORWARD != 0 {
        Forward::Wide(input.take::<u32>()?)
    } else {
        Forward::Narrow(input.take::<u16>()?)
    };
    let region = input.take::<u16>()?;
    let regions: Vec<String> = input.strings()?.into_iter().map(String::from).collect();
    let duration = input.take::<u32>()?;
    let published = input.take::<i64>()?;
    let views = input.take::<i64>()?;
    let channel = input.take::<u32>()?;
    let channel_names = input.strings()?;
    let marks = input.take::<u8>()?;
    let inexact = Inexact {
        duration: marks.first().is_some_and(|m| *m != 0),
        published: marks.get(1).is_some_and(|m| *m != 0),
        views: marks.get(2).is_some_and(|m| *m != 0),
        channel: marks.get(3).is_some_and(|m| *m != 0),
    };
    let prefixes = PrefixTable {
        first: input.take::<u32>()?,
        end: input.take::<u32>()?,
        rows: input.take::<u32>()?,
        class_end: input.take::<u32>()?,
        class_freq: input.take::<u32>()?,
        class_len: input.take::<u32>()?,
        class_byte_end: input.take::<u32>()?,
        class_bytes: input.take::<u8>()?,
    };
    prefixes.check(terms.len())?;
    let rows = doc_len.len();
    if [title_len.len(), region.len()].iter().any(|&n| n != rows) || doc_start.len() != rows {
        return Err("per-row arrays disagree".into());
    }
    let channel_ids: HashMap<Box<str>, u32> =
        channel_names.iter().enumerate().filter_map(|(i, n)| Some((n.clone(), u32::try_from(i).ok()?))).collect();
    Ok(Some(Snapshot {
        generation: *generation as i64,
        terms,
        lists,
        overflow,
        doc_len,
        title_len,
        doc_start,
        forward,
        region,
        regions,
        cols: BaseCols { duration, published, views, channel, channel_names, channel_ids, inexact },
        n_rows: *n_rows as i64,
        n_tokens: *n_tokens as i64,
        postings: usize::try_from(*postings).unwrap_or(0),
        prefixes,
        memo: super::memo::Memo::with_budget(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::index::build::{Builder, Instance};
    use crate::search::index::columns::Cols;

    proptest::proptest! {
        /// The checksum of bytes fed in pieces is that of the whole (the writer sums
        /// section by section, the loader the mapped file at once), and one changed
        /// byte changes it.
        #[test]
        fn the_checksum_does_not_depend_on_how_bytes_are_fed(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
            flip in 0usize..300,
        ) {
            let mut whole = Sum::new();
            whole.update(&bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Sum::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                pieces.update(&bytes[from..c]);
                from = c;
            }
            let expected = whole.finish();
            proptest::prop_assert_eq!(pieces.finish(), expected);
            if !bytes.is_empty() {
                let mut changed = bytes.clone();
                let at = flip % changed.len();
                changed[at] ^= 0x5a;
                let mut other = Sum::new();
                other.update(&changed);
                proptest::prop_assert_ne!(other.finish(), expected);
            }
        }
    }
    use crate::search::tokenize::Phrase;

    fn sample() -> Result<Snapshot, Box<dyn std::error::Error>> {
        let inst = |rowid, column, offset| Instance { rowid, column, offset };
        let mut b = Builder::new(9, 3);
        for (r, reg, t, c) in [(1, "US", 2, 1), (2, "GLOBAL", 2, 1), (3, "DE", 1, 1)] {
            b.set_region(r, reg)?;
            b.set_sizes(r, t, c)?;
            let cols =
                Cols { duration: 60 * r, published: Some(1_700_000_000 + r), views: 10 - r, channel: "chan".into() };
            b.set_cols(r, &cols, Inexact::default())?;
        }
        b.begin_terms(4);
        b.add_term("chan", &[inst(1, 1, 0), inst(3, 1, 0)])?;
        b.add_term("live", &[inst(1, 0, 1)])?;
        b.add_term("movie", &[inst(3, 0, 0)])?;
        b.add_term("music", &[inst(1, 0, 0), inst(2, 0, 0), inst(2, 0, 1), inst(2, 1, 0)])?;
        Ok(b.finish())
    }

    fn phrases(words: &[&str], prefix: bool) -> Vec<Phrase> {
        words.iter().map(|w| Phrase { tokens: vec![(*w).to_owned()], prefix }).collect()
    }

    #[test]
    fn a_saved_snapshot_maps_back_and_ranks_the_same() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("vf-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("videos.db.rank");
        let built = sample()?;
        save(&built, 42, &path)?;
        // Issue 31: read-only (a writer truncating it in place would take down every
        // process that maps it), written under a random name of its own, nothing left.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o444);
        save(&built, 42, &path)?; // over the read-only file: a rename, not a write
        let names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["videos.db.rank".to_owned()], "temporary files left: {names:?}");
        let (a, b) = (crate::sys::temp_beside(&path, "rank"), crate::sys::temp_beside(&path, "rank"));
        assert_ne!(a, b, "random temporary names");
        let mapped = load(&path, 42)?.ok_or("no file")?;
        assert!(mapped.is_mapped() && !built.is_mapped());
        assert_eq!(mapped.generation(), 9);
        assert_eq!((mapped.term_count(), mapped.posting_count()), (built.term_count(), built.posting_count()));
        assert!(mapped.heap_bytes() < built.heap_bytes(), "the large arrays live in the file");
        for (words, prefix) in
            [(&["music"][..], false), (&["chan"][..], false), (&["mu"][..], true), (&["music", "live"][..], false)]
        {
            for region in ["US", "DE", "GB"] {
                let p = phrases(words, prefix);
                assert_eq!(mapped.top_k(&p, region, 10), built.top_k(&p, region, 10), "{words:?} {region}");
            }
        }
        assert_eq!(mapped.correct("musix", false), built.correct("musix", false));
        assert_eq!(mapped.cols.get(2), built.cols.get(2));
        assert_eq!(mapped.cols.channel_id("chan"), built.cols.channel_id("chan"));

        // Another database file's index, a torn write, garbage: never used.
        assert!(load(&path, 43).is_err_and(|e| e.contains("another database file")));
        let mut bytes = std::fs::read(&path)?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::remove_file(&path)?; // (read-only: written anew, as a damaged copy would be)
        std::fs::write(&path, &bytes)?;
        assert!(load(&path, 42).is_err_and(|e| e.contains("checksum")));
        bytes[middle] ^= 0x40;
        bytes.truncate(bytes.len() - 12);
        std::fs::write(&path, &bytes)?;
        assert!(load(&path, 42).is_err());
        std::fs::write(&path, b"not an index")?;
        assert!(load(&path, 42).is_err());
        std::fs::remove_file(&path)?;
        assert!(load(&path, 42)?.is_none(), "no file: build");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
