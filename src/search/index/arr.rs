//! [`Arr`]: an array the snapshot owns (built in memory) or reads from a mapped
//! index file (shared through the page cache by every process on the box),
//! read the same way either way.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::ops::Deref;
use std::sync::Arc;

use crate::sys::{Mmap, Plain};

/// A read-mostly array of plain data: owned, or `len` items at byte offset `off`
/// of a mapped file, which it keeps mapped.
pub enum Arr<T: Plain> {
    /// Built in this process.
    Owned(Vec<T>),
    /// Part of a mapped index file.
    Mapped {
        /// The mapping (kept alive by every array that reads it).
        map: Arc<Mmap>,
        /// Byte offset of the first item.
        off: usize,
        /// Items.
        len: usize,
    },
}

impl<T: Plain> std::fmt::Debug for Arr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arr::Owned(v) => write!(f, "Owned({} items)", v.len()),
            Arr::Mapped { off, len, .. } => write!(f, "Mapped({len} items at {off})"),
        }
    }
}

impl<T: Plain> Clone for Arr<T> {
    fn clone(&self) -> Self {
        match self {
            Arr::Owned(v) => Arr::Owned(v.clone()),
            Arr::Mapped { map, off, len } => Arr::Mapped { map: Arc::clone(map), off: *off, len: *len },
        }
    }
}

impl<T: Plain> Default for Arr<T> {
    fn default() -> Self {
        Arr::Owned(Vec::new())
    }
}

impl<T: Plain> From<Vec<T>> for Arr<T> {
    fn from(v: Vec<T>) -> Self {
        Arr::Owned(v)
    }
}

impl<T: Plain> Deref for Arr<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Arr::Owned(v) => v,
            Arr::Mapped { map, off, len } => map.slice(*off, *len),
        }
    }
}

impl<T: Plain> Arr<T> {
    /// The array as a vector to change (a mapped one is copied first: the file is never written).
    pub fn vec(&mut self) -> &mut Vec<T> {
        if let Arr::Mapped { .. } = self {
            *self = Arr::Owned(self.to_vec());
        }
        match self {
            Arr::Owned(v) => v,
            Arr::Mapped { .. } => unreachable_owned(),
        }
    }

    /// Heap bytes this array holds (0 when mapped: the page cache holds those, shared).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Arr::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Arr::Mapped { .. } => 0,
        }
    }

    /// Whether the array lives in a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Arr::Mapped { .. })
    }

    /// The mapping the array reads, when it reads one.
    pub fn mapping(&self) -> Option<&Mmap> {
        match self {
            Arr::Owned(_) => None,
            Arr::Mapped { map, .. } => Some(map),
        }
    }
}

/// `vec` has just made the array owned; this arm cannot be reached.
#[cold]
fn unreachable_owned<T>() -> &'static mut Vec<T> {
    // A leaked empty vector: no allocation, and never reached (see `Arr::vec`).
    Box::leak(Box::new(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_mapped_read_alike_and_a_mapped_one_is_copied_before_a_change() -> std::io::Result<()> {
        let path = std::env::temp_dir().join(format!("vf-arr-{}", std::process::id()));
        std::fs::write(&path, crate::sys::as_bytes(&[7u32, 1, 2, 3]))?;
        let map = Arc::new(Mmap::map(&std::fs::File::open(&path)?)?);
        let _ = std::fs::remove_file(&path);
        let owned: Arr<u32> = vec![1, 2, 3].into();
        let mut mapped: Arr<u32> = Arr::Mapped { map, off: 4, len: 3 };
        assert_eq!(&owned[..], &mapped[..]);
        assert!(mapped.is_mapped() && mapped.heap_bytes() == 0);
        let misaligned: Arr<u32> =
            Arr::Mapped { map: Arc::new(Mmap::map(&std::fs::File::open("/proc/self/exe")?)?), off: 1, len: 2 };
        assert!(misaligned.is_empty(), "a misaligned or out-of-bounds view reads as empty, never UB");
        mapped.vec().push(4);
        assert!(!mapped.is_mapped());
        assert_eq!(&mapped[..], &[1, 2, 3, 4]);
        Ok(())
    }
}
