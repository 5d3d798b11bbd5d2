//! The forward-pass mode (`../run.py --forward BLOB --ids ...`): one whole forward pass of
//! a real model with the build's kernels, every output of `albert forward` written to
//! memory for the runner to compare bit for bit with the host's.
//!
//! No file, no allocator: the runner maps the blob, a scratch area and an output area at
//! addresses of its choosing, writes a [`Header`] describing them and the token ids, and
//! enters `_start` with the header's address in RDI. The harness fills in the header's
//! result fields and ends (`hlt`) with the header's address in RAX.

// `Problem` wraps the engine's `Error`, which carries tensor names inline (no allocator): it
// is large, and built only on the failure path (as in firmware-demo).
#![allow(clippy::result_large_err)]

use albert_engine::{Heads, Inputs, Model, kernels};
use core::fmt::Write;

use crate::Cursor;

/// Token ids a header holds.
pub const MAX_IDS: usize = 512;
/// Output sections (one per `albert forward` JSON key).
pub const MAX_SECTIONS: usize = 8;

pub const STATE_DONE: u32 = 1;
pub const STATE_PANICKED: u32 = 2;
pub const STATE_ERROR: u32 = 3;

/// One output: `len` f32 values at element `offset` of the output area, rows of `width`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Section {
    pub name: [u8; 24],
    pub offset: u64,
    pub len: u64,
    pub width: u64,
}

/// Written by the runner (inputs), completed by the harness (results). Layout mirrored in
/// `../run.py` (`FWD_HEADER`): keep the two in step.
#[repr(C)]
pub struct Header {
    // Inputs.
    pub magic: [u8; 8],
    pub size: u32,
    pub n_ids: u32,
    pub blob_addr: u64,
    pub blob_len: u64,
    pub scratch_addr: u64,
    pub scratch_len: u64,
    pub out_addr: u64,
    /// Capacity of the output area in f32 elements.
    pub out_cap: u64,
    pub has_type_ids: u32,
    pub _pad0: u32,
    pub ids: [u32; MAX_IDS],
    pub type_ids: [u32; MAX_IDS],
    // Results.
    /// 0 until the harness ends (running, or stopped by an exception).
    pub state: u32,
    pub section_count: u32,
    pub kernel: [u8; 16],
    pub scratch_needed: u64,
    /// f32 elements written to the output area.
    pub out_len: u64,
    pub sections: [Section; MAX_SECTIONS],
    pub msg_len: u32,
    pub _pad1: u32,
    pub msg: [u8; 256],
}

pub const MAGIC: [u8; 8] = *b"ALBFWD01";

/// The header of the current run, for the panic handler (null in the GEMM mode).
pub static HEADER: crate::Global<*mut Header> = crate::Global::new(core::ptr::null_mut());

/// Records an error message in the header.
fn message(h: &mut Header, args: core::fmt::Arguments<'_>) {
    let mut w = Cursor { buf: &mut h.msg, len: 0 };
    let _ = w.write_fmt(args);
    h.msg_len = w.len as u32;
}

/// Runs the pass described by `*h`; returns the final state.
///
/// # Safety
/// `h` points to a writable header whose areas are mapped as it describes and overlap
/// nothing else.
pub unsafe fn run(h: *mut Header) -> u32 {
    // SAFETY: single-threaded; the caller's contract.
    let h = unsafe { &mut *h };
    if h.magic != MAGIC || h.size as usize != core::mem::size_of::<Header>() {
        let size = h.size;
        message(h, format_args!("bad header (magic or size {size}; expected {})", core::mem::size_of::<Header>()));
        return STATE_ERROR;
    }
    // SAFETY: the caller's contract (three disjoint mapped areas).
    let (blob, scratch, out) = unsafe {
        (
            core::slice::from_raw_parts(h.blob_addr as *const u8, h.blob_len as usize),
            core::slice::from_raw_parts_mut(h.scratch_addr as *mut u8, h.scratch_len as usize),
            core::slice::from_raw_parts_mut(h.out_addr as *mut f32, h.out_cap as usize),
        )
    };
    let n = (h.n_ids as usize).min(MAX_IDS);
    let (ids_all, types_all) = (h.ids, h.type_ids);
    let ids = &ids_all[..n];
    let types = if h.has_type_ids != 0 { Some(&types_all[..n]) } else { None };
    let mut sections = [Section { name: [0; 24], offset: 0, len: 0, width: 0 }; MAX_SECTIONS];
    let mut count = 0;
    let mut used = 0usize;
    let result = forward(blob, ids, types, scratch, out, &mut sections, &mut count, &mut used, h);
    h.sections = sections;
    h.section_count = count as u32;
    h.out_len = used as u64;
    match result {
        Ok(()) => STATE_DONE,
        Err(e) => {
            message(h, format_args!("{e}"));
            STATE_ERROR
        }
    }
}

/// What `albert forward --json` computes for one sequence (tools/src/bin/albert.rs), in
/// its order: the same engine calls, the outputs appended to `out`.
#[allow(clippy::too_many_arguments)]
fn forward(
    blob: &[u8],
    ids: &[u32],
    types: Option<&[u32]>,
    scratch: &mut [u8],
    out: &mut [f32],
    sections: &mut [Section; MAX_SECTIONS],
    count: &mut usize,
    used: &mut usize,
    h: &mut Header,
) -> Result<(), Problem> {
    let model = Model::from_bytes(blob)?;
    let kernel = kernels::selected().map(|k| k.name()).unwrap_or("none");
    let len = kernel.len().min(15);
    h.kernel[..len].copy_from_slice(&kernel.as_bytes()[..len]);
    let c = *model.config();
    let needed = model.scratch_bytes(ids.len().max(1), 1);
    h.scratch_needed = needed as u64;
    if needed > scratch.len() {
        return Err(Problem::Msg("scratch area smaller than the model needs (see scratch_needed)"));
    }
    let inputs = Inputs { token_type_ids: types, ..Inputs::single(ids) };
    let mut enc = model.encode(&inputs, &mut scratch[..needed])?;
    let (hs, v, nl, n) = (c.hidden_size as usize, c.vocab_size as usize, c.num_labels as usize, ids.len());

    let cap = out.len();
    // Reserves `len` outputs named `name`, rows of `width`.
    let mut take = |name: &str, len: usize, width: usize| -> Result<core::ops::Range<usize>, Problem> {
        if *count == MAX_SECTIONS {
            return Err(Problem::Msg("too many output sections"));
        }
        if *used + len > cap {
            return Err(Problem::Msg("output area too small"));
        }
        let s = &mut sections[*count];
        let l = name.len().min(23);
        s.name[..l].copy_from_slice(&name.as_bytes()[..l]);
        (s.offset, s.len, s.width) = (*used as u64, len as u64, width as u64);
        *count += 1;
        let r = *used..*used + len;
        *used += len;
        Ok(r)
    };

    let r = take("last_hidden_state", n * hs, hs)?;
    out[r].copy_from_slice(enc.last_hidden_state());
    if c.heads.has(Heads::POOLER) {
        let r = take("pooler_output", hs, hs)?;
        model.pooler_output(&mut enc, 0, &mut out[r])?;
    }
    if c.heads.has(Heads::MLM) {
        let r = take("prediction_logits", n * v, v)?;
        for (p, row) in out[r].chunks_mut(v).enumerate() {
            model.mlm_logits(&mut enc, 0, p, row)?;
        }
    }
    if c.heads.has(Heads::SOP) {
        let r = take("sop_logits", 2, 2)?;
        model.sop_logits(&mut enc, 0, &mut out[r])?;
    }
    if c.heads.has(Heads::SEQ_CLS) {
        let r = take("logits", nl, nl)?;
        model.classify(&mut enc, 0, &mut out[r])?;
    }
    if c.heads.has(Heads::MULTIPLE_CHOICE) {
        let r = take("logits", 1, 1)?;
        out[r.start] = model.choice_logit(&mut enc, 0)?;
    }
    if c.heads.has(Heads::TOKEN_CLS) {
        let r = take("logits", n * nl, nl)?;
        for (p, row) in out[r].chunks_mut(nl).enumerate() {
            model.classify_token(&mut enc, 0, p, row)?;
        }
    }
    if c.heads.has(Heads::QA) {
        let rs = take("start_logits", n, n)?;
        let re = take("end_logits", n, n)?;
        for p in 0..n {
            let (a, b) = model.qa_logits(&mut enc, 0, p)?;
            out[rs.start + p] = a;
            out[re.start + p] = b;
        }
    }
    Ok(())
}

enum Problem {
    Engine(albert_engine::Error),
    Msg(&'static str),
}

impl From<albert_engine::Error> for Problem {
    fn from(e: albert_engine::Error) -> Self {
        Problem::Engine(e)
    }
}

impl core::fmt::Display for Problem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Problem::Engine(e) => write!(f, "{e}"),
            Problem::Msg(m) => f.write_str(m),
        }
    }
}
