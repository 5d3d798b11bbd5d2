//! Splitting a forward pass's loops into tasks with disjoint outputs, run on the model's
//! thread pool (`threads.rs`, with `std`) or one after another.
//!
//! A loop is cut into at most [`MAX_PARTS`] parts by a [`Partition`] of its index range
//! (output columns of a GEMM, heads, rows). Each output buffer is wrapped in a split view
//! ([`Chunks`]: contiguous parts; [`Columns`]: a column range of every row of a row-major
//! matrix) that hands out each part's `&mut` exactly once (checked with one atomic flag per
//! part), so the tasks write their parts in parallel without `unsafe` at the call sites.
//!
//! Bit-identical results for any thread count follow from how the callers cut: every
//! output element is computed by the same operations in the same order whichever part it
//! falls in (integer GEMM sums are exact; float reductions run along a row or a head,
//! which a part never splits).

use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

/// The most parts a loop is cut into.
pub(crate) const MAX_PARTS: usize = 64;

/// `0..len` cut into consecutive ranges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Partition {
    ends: [usize; MAX_PARTS + 1],
    parts: usize,
}

impl Partition {
    /// The empty range in one part: for a split view of a buffer a loop does not use.
    pub const EMPTY: Partition = Partition { ends: [0; MAX_PARTS + 1], parts: 1 };

    /// `0..len` in at most `parts` ranges of nearly equal length, every boundary a multiple
    /// of `align` (the last range takes the rest). At least one range, even for `len` 0.
    pub fn even(len: usize, parts: usize, align: usize) -> Partition {
        let align = align.max(1);
        let units = len.div_ceil(align);
        let parts = parts.clamp(1, MAX_PARTS).min(units.max(1));
        let mut ends = [len; MAX_PARTS + 1];
        for (p, e) in ends.iter_mut().enumerate().take(parts) {
            *e = (units * p / parts * align).min(len);
        }
        Partition { ends, parts }
    }

    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The range of part `p`.
    pub fn range(&self, p: usize) -> Range<usize> {
        self.ends[p]..self.ends[p + 1]
    }
}

/// One flag per part: each part is handed out once.
struct Taken([AtomicBool; MAX_PARTS]);

impl Taken {
    fn new() -> Self {
        Taken(core::array::from_fn(|_| AtomicBool::new(false)))
    }

    fn take(&self, p: usize) {
        assert!(!self.0[p].swap(true, Ordering::Relaxed), "part {p} of a split buffer taken twice");
    }
}

/// A buffer whose part `p` is `data[unit·start .. unit·end]` for part `p`'s range.
pub(crate) struct Chunks<'a, T> {
    ptr: *mut T,
    len: usize,
    unit: usize,
    part: Partition,
    taken: Taken,
    _data: PhantomData<&'a mut [T]>,
}

// SAFETY: a `Chunks` is shared between the tasks of one run; each part (a disjoint region)
// is handed out once, as `&mut [T]`, which needs `T: Send` to cross threads.
unsafe impl<T: Send> Sync for Chunks<'_, T> {}

impl<'a, T> Chunks<'a, T> {
    /// Panics unless `data` holds `unit ·` the partition's length.
    pub fn new(data: &'a mut [T], part: Partition, unit: usize) -> Self {
        assert!(part.ends[part.parts] * unit <= data.len(), "split buffer too short");
        Chunks { ptr: data.as_mut_ptr(), len: data.len(), unit, part, taken: Taken::new(), _data: PhantomData }
    }

    /// Part `p`'s region; panics if `p` was taken before.
    #[allow(clippy::mut_from_ref)] // handed out once per part, checked by `taken`
    pub fn take(&self, p: usize) -> &mut [T] {
        self.taken.take(p);
        let r = self.part.range(p);
        let (start, end) = (r.start * self.unit, r.end * self.unit);
        assert!(end <= self.len);
        // SAFETY: in bounds (checked); the partition's ranges are disjoint and each is handed
        // out once (`taken`), so no two live `&mut` overlap; `'a` keeps the buffer borrowed.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

/// A row-major matrix with rows of `width` whose part `p` is columns
/// `unit·start .. unit·end` of every row.
pub(crate) struct Columns<'a, T> {
    ptr: *mut T,
    rows: usize,
    width: usize,
    unit: usize,
    part: Partition,
    taken: Taken,
    _data: PhantomData<&'a mut [T]>,
}

// SAFETY: as for `Chunks`: the parts are disjoint column sets, each handed out once.
unsafe impl<T: Send> Sync for Columns<'_, T> {}

impl<'a, T> Columns<'a, T> {
    /// `data` holds `rows × width` values (at least); the partition covers at most `width`
    /// columns in units of `unit`.
    pub fn new(data: &'a mut [T], rows: usize, width: usize, part: Partition, unit: usize) -> Self {
        assert!(rows * width <= data.len() && part.ends[part.parts] * unit <= width, "split matrix too short");
        Columns { ptr: data.as_mut_ptr(), rows, width, unit, part, taken: Taken::new(), _data: PhantomData }
    }

    /// Part `p`'s columns; panics if `p` was taken before.
    pub fn take(&self, p: usize) -> ColumnsMut<'_, T> {
        self.taken.take(p);
        let r = self.part.range(p);
        ColumnsMut {
            ptr: self.ptr,
            rows: self.rows,
            width: self.width,
            cols: r.start * self.unit..r.end * self.unit,
            _data: PhantomData,
        }
    }
}

/// Columns `cols` of every row of a matrix, borrowed by one task.
pub(crate) struct ColumnsMut<'s, T> {
    ptr: *mut T,
    rows: usize,
    width: usize,
    cols: Range<usize>,
    _data: PhantomData<&'s mut [T]>,
}

impl<T> ColumnsMut<'_, T> {
    /// The columns, as a range of the full row.
    #[inline(always)]
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Row `r`'s slice of the columns.
    #[inline(always)]
    pub fn row(&mut self, r: usize) -> &mut [T] {
        assert!(r < self.rows);
        // SAFETY: `r < rows` and `cols.end ≤ width` (checked in `Columns::new`), so the slice
        // lies inside the `rows × width` buffer; other parts have disjoint columns, and the
        // `&mut self` borrow keeps this view's rows from being borrowed twice.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(r * self.width + self.cols.start), self.cols.len()) }
    }
}

/// The least work worth a part of a parallel loop, in int8 multiply-adds: 1-3 µs on an
/// x86 core with AVX-512 VNNI, tens of µs on a Cortex-A72, about what it costs to bring
/// another thread into a run. Chosen by that estimate: the pool cost that motivated it
/// (16 threads 2.6× slower than 4 on an 8-token pass, `threads.rs`) was measured on a
/// 16-core machine, and this one has two cores.
pub(crate) const MIN_PART_WORK: usize = 1 << 18;

/// The work of one element of a float step (quantization, LayerNorm, an activation,
/// softmax), in the unit of [`MIN_PART_WORK`]: such a step does 10-20 float operations per
/// element at 4-16 lanes, where an int8 kernel does 32-64 multiply-adds per instruction.
pub(crate) const ELEMENT_WORK: usize = 32;

/// How a forward pass runs its parallel loops: on a pool (with `std`), or one task after
/// another (`Par::default()`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Par<'p> {
    #[cfg(feature = "std")]
    pool: Option<&'p crate::threads::Pool>,
    _pool: PhantomData<&'p ()>,
}

impl<'p> Par<'p> {
    #[cfg(feature = "std")]
    pub fn pool(pool: Option<&'p crate::threads::Pool>) -> Self {
        Par { pool, _pool: PhantomData }
    }

    /// Tasks that run at once.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(p) = self.pool {
            return p.threads();
        }
        1
    }

    /// How many parts to cut a loop of `len` units into (`align` units per part at least),
    /// each unit `unit_work` multiply-adds or the like ([`ELEMENT_WORK`] per element of a
    /// float step): a few per thread, so a thread the OS delays leaves its parts to the
    /// others, but none with less than [`MIN_PART_WORK`] (fewer parts than threads leave
    /// the other threads out of the run, and one part is the plain serial loop); one when
    /// single-threaded.
    pub fn partition(&self, len: usize, align: usize, unit_work: usize) -> Partition {
        let t = self.threads();
        let by_work = (len.saturating_mul(unit_work) / MIN_PART_WORK).max(1);
        Partition::even(len, if t == 1 { 1 } else { (4 * t).min(by_work) }, align)
    }

    /// `f(p)` for every part `p` of `part`.
    pub fn run(&self, part: &Partition, f: &(dyn Fn(usize) + Sync)) {
        #[cfg(feature = "std")]
        if let Some(p) = self.pool {
            return p.run(part.parts(), f);
        }
        (0..part.parts()).for_each(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_range_in_aligned_parts() {
        for len in [0usize, 1, 7, 48, 768, 3072, 30000] {
            for parts in [1usize, 2, 3, 8, 64, 200] {
                for align in [1usize, 16, 48] {
                    let p = Partition::even(len, parts, align);
                    assert!(p.parts() >= 1 && p.parts() <= parts.min(MAX_PARTS));
                    let mut at = 0;
                    for i in 0..p.parts() {
                        let r = p.range(i);
                        assert_eq!(r.start, at);
                        assert!(r.start.is_multiple_of(align) && r.end >= r.start);
                        at = r.end;
                    }
                    assert_eq!(at, len, "len {len} parts {parts} align {align}");
                }
            }
        }
    }

    #[test]
    fn column_parts_write_disjoint_columns() {
        let (rows, width) = (5, 10);
        let mut m = vec![0u32; rows * width];
        let part = Partition::even(width, 3, 1);
        let cols = Columns::new(&mut m, rows, width, part, 1);
        for p in 0..part.parts() {
            let mut v = cols.take(p);
            for r in 0..rows {
                v.row(r).iter_mut().for_each(|x| *x += 1 + p as u32);
            }
        }
        for r in 0..rows {
            for c in 0..width {
                let p = (0..part.parts()).find(|&p| part.range(p).contains(&c)).unwrap();
                assert_eq!(m[r * width + c], 1 + p as u32);
            }
        }
    }

    #[test]
    #[should_panic(expected = "taken twice")]
    fn a_part_is_handed_out_once() {
        let mut d = [0u8; 8];
        let c = Chunks::new(&mut d, Partition::even(8, 2, 1), 1);
        let _a = c.take(1);
        let _b = c.take(1);
    }
}
