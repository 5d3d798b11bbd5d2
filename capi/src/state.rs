//! The model handle's layout, its validation, and error reporting.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use albert_engine::{Error, Model, Tokenizer};

use crate::AlbertModel;

/// `magic` of an open handle.
const MAGIC_OPEN: u64 = 0x414c_4245_5254_4f50; // "ALBERTOP"
/// `magic` of a handle whose open failed: only `albert_last_error` and `albert_model_close` take it.
const MAGIC_FAILED: u64 = 0x414c_4245_5254_4641; // "ALBERTFA"

/// Longest error message kept (bytes, UTF-8, cut at a character boundary).
pub(crate) const MESSAGE_BYTES: usize = 384;

/// An error message in a fixed buffer.
#[derive(Clone, Copy)]
pub(crate) struct Message {
    len: usize,
    buf: [u8; MESSAGE_BYTES],
}

impl Message {
    pub const EMPTY: Message = Message { len: 0, buf: [0; MESSAGE_BYTES] };

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    pub fn of(why: &dyn fmt::Display) -> Message {
        let mut m = Message::EMPTY;
        // A message that does not fit is cut; `write_str` never fails.
        let _ = write!(m, "{why}");
        m
    }
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let n = c.len_utf8();
            if self.len + n > MESSAGE_BYTES {
                break;
            }
            c.encode_utf8(&mut self.buf[self.len..self.len + n]);
            self.len += n;
        }
        Ok(())
    }
}

/// A failure inside an entry point: the status code returned and the message recorded.
pub(crate) struct Fail {
    pub code: i32,
    pub why: Why,
}

pub(crate) enum Why {
    Engine(Error),
    Text(&'static str),
    Size { what: &'static str, needed: usize, found: usize },
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Engine(e) => write!(f, "{e}"),
            Why::Text(t) => f.write_str(t),
            Why::Size { what, needed, found } => write!(f, "{what}: needs {needed}, got {found}"),
        }
    }
}

impl Fail {
    pub fn new(code: i32, text: &'static str) -> Fail {
        Fail { code, why: Why::Text(text) }
    }

    pub fn null(what: &'static str) -> Fail {
        Fail::new(crate::ALBERT_ERR_NULL, what)
    }

    pub fn size(what: &'static str, needed: usize, found: usize) -> Fail {
        Fail { code: crate::ALBERT_ERR_BUFFER_TOO_SMALL, why: Why::Size { what, needed, found } }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        use crate::*;
        let code = match &e {
            Error::BadInput { .. }
            | Error::BadPositions { .. }
            | Error::InvalidUtf8 { .. }
            | Error::Truncation { .. } => ALBERT_ERR_BAD_INPUT,
            Error::ScratchTooSmall { .. } | Error::OutputSize { .. } | Error::TokenizerCapacity { .. } => {
                ALBERT_ERR_BUFFER_TOO_SMALL
            }
            Error::NoSuchHead { .. } => ALBERT_ERR_UNSUPPORTED,
            #[cfg(feature = "std")]
            Error::Io { .. } => ALBERT_ERR_IO,
            _ => ALBERT_ERR_BAD_MODEL,
        };
        Fail { code, why: Why::Engine(e) }
    }
}

/// What an open handle holds. Field order matters: `model` and `tokenizer` borrow the
/// mapping and drop before it.
pub(crate) struct Loaded {
    pub model: Model<'static>,
    pub tokenizer: Option<Tokenizer<'static>>,
    #[cfg(feature = "std")]
    pub map: Option<memmap2::Mmap>,
}

/// The state an [`AlbertModel`] holds (`repr(C)`: `magic` is the first word).
#[repr(C)]
pub(crate) struct State {
    magic: u64,
    busy: AtomicBool,
    message: UnsafeCell<Message>,
    loaded: Option<Loaded>,
}

// The handle is shared between threads read-only, except its message, which is guarded
// by `busy`: a writer that finds it taken skips (the message is best effort).
// SAFETY: `message` is only touched while `busy` is held; everything else is read-only
// between open and close.
unsafe impl Sync for State {}

impl State {
    pub fn loaded(&self) -> Result<&Loaded, Fail> {
        self.loaded
            .as_ref()
            .ok_or(Fail::new(crate::ALBERT_ERR_BAD_HANDLE, "the model handle is not open (its open failed)"))
    }

    pub fn set_message(&self, m: &Message) {
        if self.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            // SAFETY: `busy` is held, so no other reference to `message` exists.
            unsafe { *self.message.get() = *m };
            self.busy.store(false, Ordering::Release);
        }
    }

    pub fn message(&self) -> Message {
        let mut out = Message::EMPTY;
        if self.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            // SAFETY: as in `set_message`.
            out = unsafe { *self.message.get() };
            self.busy.store(false, Ordering::Release);
        }
        out
    }
}

// The caller's storage must hold a `State`.
const _: () = assert!(core::mem::size_of::<State>() <= core::mem::size_of::<AlbertModel>());
const _: () = assert!(core::mem::align_of::<State>() <= core::mem::align_of::<AlbertModel>());

/// The state behind a handle the caller says is open (or failed to open).
pub(crate) fn state<'h>(h: *const AlbertModel) -> Result<&'h State, Fail> {
    if h.is_null() {
        return Err(Fail::null("the model handle is NULL"));
    }
    if !h.cast::<State>().is_aligned() {
        return Err(Fail::new(crate::ALBERT_ERR_BAD_HANDLE, "the model handle is misaligned"));
    }
    // SAFETY: `h` is non-null and aligned, and the caller passes a pointer to an
    // `AlbertModel` (at least 8 readable bytes); `magic` is its first word.
    let magic = unsafe { core::ptr::read_volatile(h.cast::<u64>()) };
    if magic != MAGIC_OPEN && magic != MAGIC_FAILED {
        return Err(Fail::new(
            crate::ALBERT_ERR_BAD_HANDLE,
            "not an open model handle (never opened, closed, or overwritten)",
        ));
    }
    // SAFETY: the magic says an open call wrote a `State` here and no close has run since.
    Ok(unsafe { &*h.cast::<State>() })
}

/// Writes a fresh state into the caller's storage (open or failed, with its message).
///
/// # Safety
/// `h` is non-null, aligned, and points to writable `AlbertModel` storage no other
/// thread is using.
pub(crate) unsafe fn install(h: *mut AlbertModel, loaded: Result<Loaded, &Fail>) {
    let (magic, message, loaded) = match loaded {
        Ok(l) => (MAGIC_OPEN, Message::EMPTY, Some(l)),
        Err(f) => (MAGIC_FAILED, Message::of(&f.why), None),
    };
    let s = State { magic, busy: AtomicBool::new(false), message: UnsafeCell::new(message), loaded };
    // SAFETY: per the function's contract; the previous contents are not dropped (they
    // are either uninitialised or a closed state).
    unsafe { h.cast::<State>().write(s) };
}

/// Drops an open or failed state and marks the storage closed.
///
/// # Safety
/// `h` passed [`state`], and no other thread uses the handle during or after the call.
pub(crate) unsafe fn uninstall(h: *mut AlbertModel) {
    let s = h.cast::<State>();
    // SAFETY: `state` checked the magic: a `State` lives here; the caller guarantees
    // exclusive access. After the drop only the magic word is written.
    unsafe {
        core::ptr::drop_in_place(s);
        core::ptr::addr_of_mut!((*s).magic).write(0);
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    static LAST: core::cell::RefCell<Message> = const { core::cell::RefCell::new(Message::EMPTY) };
}

/// Records a failure: on the handle (when it is one) and, with `std`, for the thread.
pub(crate) fn record(h: *const AlbertModel, fail: &Fail) {
    let m = Message::of(&fail.why);
    if let Ok(s) = state(h) {
        s.set_message(&m);
    }
    #[cfg(feature = "std")]
    LAST.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = m;
        }
    });
}

/// The calling thread's last message (`std`), or none.
pub(crate) fn thread_message() -> Message {
    #[cfg(feature = "std")]
    {
        LAST.with(|l| l.try_borrow().map(|m| *m).unwrap_or(Message::EMPTY))
    }
    #[cfg(not(feature = "std"))]
    {
        Message::EMPTY
    }
}
