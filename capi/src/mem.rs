//! Caller memory: slices from C pointers, and typed regions carved from scratch bytes.

use core::mem::{align_of, size_of};

use crate::ALBERT_ERR_INVALID_ARGUMENT;
use crate::state::Fail;

fn check<T>(p: *const T, n: usize, what: &'static str) -> Result<bool, Fail> {
    if n == 0 {
        return Ok(false);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if !p.is_aligned() {
        return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "a buffer pointer is misaligned for its element type"));
    }
    if n.checked_mul(size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "a buffer length is too large"));
    }
    Ok(true)
}

/// `n` elements at `p` (`p` may be NULL when `n` is 0).
///
/// # Safety
/// When `n > 0` and `p` is non-null, `p` points to `n` initialised elements that stay
/// valid and unmodified for `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, n: usize, what: &'static str) -> Result<&'a [T], Fail> {
    if !check(p, n, what)? {
        return Ok(&[]);
    }
    // SAFETY: non-null, aligned, size within isize (checked); validity per the contract.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

/// Like [`slice`], mutable.
///
/// # Safety
/// As [`slice`], and nothing else accesses the elements during `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, n: usize, what: &'static str) -> Result<&'a mut [T], Fail> {
    if !check(p, n, what)? {
        return Ok(&mut []);
    }
    // SAFETY: as in `slice`, exclusive per the contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, n) })
}

/// An optional input: `None` when `p` is NULL.
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn opt_slice<'a, T>(p: *const T, n: usize, what: &'static str) -> Result<Option<&'a [T]>, Fail> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { slice(p, n, what) }.map(Some)
}

/// Bytes of scratch that always hold `n` values of `T` whatever the start address.
pub(crate) const fn bytes_for<T>(n: usize) -> usize {
    n.saturating_mul(size_of::<T>()).saturating_add(align_of::<T>() - 1)
}

/// Scratch bytes being carved into typed regions, front to back.
pub(crate) struct Arena<'s> {
    rest: &'s mut [u8],
    /// Bytes the regions taken so far needed (for the message when one does not fit).
    pub taken: usize,
}

impl<'s> Arena<'s> {
    pub fn new(bytes: &'s mut [u8]) -> Self {
        Arena { rest: bytes, taken: 0 }
    }

    /// `n` values of `T`, each set to `init`.
    pub fn take<T: Copy>(&mut self, n: usize, init: T, what: &'static str) -> Result<&'s mut [T], Fail> {
        let pad = self.rest.as_ptr().align_offset(align_of::<T>());
        let len = n.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(pad));
        let Some(len) = len.filter(|&l| l <= self.rest.len()) else {
            let needed = self.taken.saturating_add(bytes_for::<T>(n));
            return Err(Fail::size(what, needed, self.taken.saturating_add(self.rest.len())));
        };
        let (head, tail) = core::mem::take(&mut self.rest).split_at_mut(len);
        self.rest = tail;
        self.taken += len;
        let p = head[pad..].as_mut_ptr().cast::<T>();
        for i in 0..n {
            // SAFETY: `head[pad..]` is `n * size_of::<T>()` bytes at an address aligned for
            // `T` (`align_offset`), borrowed exclusively for 's; `T: Copy` has no drop glue.
            unsafe { p.add(i).write(init) };
        }
        // SAFETY: the `n` values were just initialised; the bytes are borrowed for 's and
        // `head` is not used again.
        Ok(unsafe { core::slice::from_raw_parts_mut(p, n) })
    }

    /// The bytes not yet carved.
    pub fn rest(self) -> &'s mut [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carves_aligned_regions_and_reports_needed_sizes() {
        let mut buf = [0u8; 64];
        let mut a = Arena::new(&mut buf[1..]);
        let x = a.take(3, 7u32, "x").ok().unwrap();
        assert_eq!(x, &[7, 7, 7]);
        assert!(x.as_ptr().is_aligned());
        let e = a.take(100, 0u64, "y").err().unwrap();
        assert_eq!(e.code, crate::ALBERT_ERR_BUFFER_TOO_SMALL);
    }
}
