//! Reading the packed blob (`FORMAT.md`): validation and zero-copy views.
//!
//! [`Blob::parse`] checks everything a later step will rely on (bounds, alignment, sizes,
//! checksum, unique names), so the model code can slice without re-checking.

#[cfg(feature = "alloc")]
pub mod write;

use crate::config::{CONFIG_WORDS, DType, ModelConfig};
use crate::error::{Error, name};

/// `"ALBQ\r\n\x1a\n"`.
pub const MAGIC: [u8; 8] = *b"ALBQ\r\n\x1a\n";
/// The format version this engine reads and writes.
pub const VERSION: u32 = 1;
/// Bytes in the fixed header.
pub const HEADER_SIZE: usize = 256;
/// Bytes per section-table entry.
pub const SECTION_ENTRY_SIZE: usize = 32;
/// Bytes per tensor-index entry.
pub const TENSOR_ENTRY_SIZE: usize = 64;
/// Alignment of every section and tensor, from the start of the file.
pub const ALIGN: usize = 64;
/// Alignment the start of the buffer must have for in-place typed views.
pub const BUFFER_ALIGN: usize = 8;
/// Most sections a file may declare (the table is tiny; more means corruption).
pub const MAX_SECTIONS: u32 = 64;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = 40;
/// Byte offset of the model config words.
pub const CONFIG_OFFSET: usize = 64;
/// Header flag: matrix weights are int8.
pub const FLAG_INT8: u32 = 1;

/// Section kinds.
pub mod section {
    pub const TENSOR_INDEX: u32 = 1;
    pub const STRINGS: u32 = 2;
    pub const TENSOR_DATA: u32 = 3;
    pub const LABELS: u32 = 4;
    /// The tokenizer (`FORMAT.md`, "The tokenizer section").
    pub const TOKENIZER: u32 = 5;
    /// Section flag: a reader that does not know the kind must refuse the file.
    pub const REQUIRED: u32 = 1;
}

/// Quantization codes of a tensor entry.
pub mod quant {
    pub const NONE: u8 = 0;
    /// One f32 scale per output row, symmetric, zero point 0.
    pub const PER_ROW_SYMMETRIC: u8 = 1;
    /// As [`PER_ROW_SYMMETRIC`], and the GEMM quantizes its input to int16 instead of int8
    /// (for the products whose error the model amplifies; `FORMAT.md`).
    pub const PER_ROW_SYMMETRIC_A16: u8 = 2;
    /// As [`PER_ROW_SYMMETRIC`], and the GEMM quantizes its input to 7 bits (codes
    /// `[-63, 63]`), which the `avx2` kernel multiplies with `vpmaddubsw` (`FORMAT.md`).
    pub const PER_ROW_SYMMETRIC_A7: u8 = 3;
}

/// What an int8 weight's GEMM quantizes its input activations to (the `quant` codes 1-3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acts {
    /// int8, codes `[-127, 127]` (code 1).
    #[default]
    Int8,
    /// int16, codes `[-32767, 32767]`, accumulated in i64 (code 2).
    Int16,
    /// 7 bits stored as int8, codes `[-63, 63]` (code 3).
    Int7,
}

impl Acts {
    /// The largest code.
    pub fn max(self) -> f32 {
        match self {
            Acts::Int8 => 127.0,
            Acts::Int16 => 32767.0,
            Acts::Int7 => 63.0,
        }
    }

    /// The tensor entry's quantization code.
    pub fn quant(self) -> u8 {
        match self {
            Acts::Int8 => quant::PER_ROW_SYMMETRIC,
            Acts::Int16 => quant::PER_ROW_SYMMETRIC_A16,
            Acts::Int7 => quant::PER_ROW_SYMMETRIC_A7,
        }
    }

    /// The activations of a per-row quantization code, `None` for any other code.
    pub fn of_quant(code: u8) -> Option<Acts> {
        [Acts::Int8, Acts::Int16, Acts::Int7].into_iter().find(|a| a.quant() == code)
    }
}

/// CRC-32 of a whole blob with the checksum field read as zero.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..CHECKSUM_OFFSET]);
    h.update(&[0u8; 4]);
    h.update(&bytes[CHECKSUM_OFFSET + 4..]);
    h.finalize()
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// One validated tensor: its metadata and its bytes, borrowed from the blob.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub quant: u8,
    pub layout: u8,
    pub ndim: u8,
    /// Outermost first; unused trailing dims are 1.
    pub shape: [u32; 4],
    /// The raw little-endian elements.
    pub data: &'a [u8],
    /// Per-row scales when `quant` is one of the per-row codes ([`Acts`]).
    pub scales: Option<&'a [f32]>,
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// A validated, borrowed view of a blob.
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    bytes: &'a [u8],
    pub config: ModelConfig,
    pub flags: u32,
    pub checksum: u32,
    index: &'a [u8],
    strings: &'a [u8],
    labels: Option<&'a [u8]>,
    tokenizer: Option<&'a [u8]>,
}

#[derive(Clone, Copy)]
struct Region {
    offset: u64,
    len: u64,
}

impl<'a> Blob<'a> {
    /// Validates `bytes` as a v1 blob, checksum included.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse_with(bytes, true)
    }

    /// Validates everything but the checksum (for callers that verified it another way,
    /// e.g. firmware checking its own image once at build time).
    pub fn parse_with(bytes: &'a [u8], verify_checksum: bool) -> Result<Self, Error> {
        let file_len = bytes.len() as u64;
        if bytes.len() < HEADER_SIZE {
            if bytes.len() >= 8 && bytes[..8] != MAGIC {
                return Err(Error::BadMagic { found: first8(bytes) });
            }
            return Err(Error::Truncated { what: "header", needed: HEADER_SIZE as u64, found: file_len });
        }
        if bytes[..8] != MAGIC {
            return Err(Error::BadMagic { found: first8(bytes) });
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: VERSION });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(BUFFER_ALIGN) {
            return Err(Error::Misaligned {
                what: "blob buffer start (in memory)",
                offset: 0,
                align: BUFFER_ALIGN as u64,
            });
        }
        let flags = u32_at(bytes, 12);
        field(flags & !FLAG_INT8 == 0, "flags", 12, flags as u64, "only bit 0 may be set")?;
        let header_size = u32_at(bytes, 16);
        field(header_size as usize == HEADER_SIZE, "header_size", 16, header_size as u64, "256")?;
        let declared_size = u64_at(bytes, 32);
        if declared_size != file_len {
            if declared_size > file_len {
                return Err(Error::Truncated {
                    what: "file (size recorded in header)",
                    needed: declared_size,
                    found: file_len,
                });
            }
            return Err(Error::BadField {
                field: "file_size",
                offset: 32,
                value: declared_size,
                expected: "the length of the buffer",
            });
        }
        let stored = u32_at(bytes, CHECKSUM_OFFSET);
        if verify_checksum {
            let computed = checksum(bytes);
            if computed != stored {
                return Err(Error::Checksum { stored, computed });
            }
        }

        // Reserved bytes are zero in every blob this format defines; anything else is
        // corruption the checksum could not see (e.g. when it is not verified).
        if let Some(at) = (44..CONFIG_OFFSET).find(|&i| bytes[i] != 0) {
            return Err(Error::BadField {
                field: "reserved",
                offset: at as u64,
                value: bytes[at] as u64,
                expected: "0",
            });
        }
        let mut words = [0u32; CONFIG_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u32_at(bytes, CONFIG_OFFSET + 4 * i);
        }
        let config = ModelConfig::from_words(&words, CONFIG_OFFSET as u64)?;
        let int8 = config.weight_dtype == DType::I8;
        field(
            (flags & FLAG_INT8 != 0) == int8,
            "flags",
            12,
            flags as u64,
            "bit 0 set exactly when weight_dtype is int8",
        )?;

        // Section table.
        let count = u32_at(bytes, 20);
        field(count <= MAX_SECTIONS, "section_count", 20, count as u64, "at most 64")?;
        let table_off = u64_at(bytes, 24);
        field(table_off == HEADER_SIZE as u64, "section_table_offset", 24, table_off, "256")?;
        let table_len = count as u64 * SECTION_ENTRY_SIZE as u64;
        in_bounds("section table", table_off, table_len, file_len)?;
        let mut sections: heapless::Vec<(u32, Region, u64), { MAX_SECTIONS as usize }> = heapless::Vec::new();
        let mut index = None;
        let mut strings = None;
        let mut data = None;
        let mut labels = None;
        let mut tokenizer = None;
        for i in 0..count as usize {
            let at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
            let kind = u32_at(bytes, at);
            let sflags = u32_at(bytes, at + 4);
            let r = Region { offset: u64_at(bytes, at + 8), len: u64_at(bytes, at + 16) };
            field(
                sflags & !section::REQUIRED == 0,
                "section flags",
                at as u64 + 4,
                sflags as u64,
                "only bit 0 may be set",
            )?;
            let reserved = u64_at(bytes, at + 24);
            field(reserved == 0, "section reserved", at as u64 + 24, reserved, "0")?;
            aligned("section", r.offset, ALIGN as u64)?;
            in_bounds("section", r.offset, r.len, file_len)?;
            if r.offset < table_off + table_len {
                return Err(Error::Overlap { what: "section (with header or section table)", offset: r.offset });
            }
            for &(k, other, _) in &sections {
                if k == kind {
                    return Err(Error::BadField {
                        field: "section kind",
                        offset: at as u64,
                        value: kind as u64,
                        expected: "each section kind at most once",
                    });
                }
                if overlaps(r, other) {
                    return Err(Error::Overlap { what: "section", offset: r.offset });
                }
            }
            // Capacity equals MAX_SECTIONS, checked above.
            let _ = sections.push((kind, r, at as u64));
            match kind {
                section::TENSOR_INDEX => index = Some(r),
                section::STRINGS => strings = Some(r),
                section::TENSOR_DATA => data = Some(r),
                section::LABELS => labels = Some(r),
                section::TOKENIZER => tokenizer = Some(r),
                _ if sflags & section::REQUIRED != 0 => {
                    return Err(Error::UnknownRequiredSection { kind, offset: at as u64 });
                }
                _ => {}
            }
        }
        let need = |r: Option<Region>, kind: &'static str| r.ok_or(Error::MissingSection { kind });
        let index = need(index, "TENSOR_INDEX")?;
        let strings = need(strings, "STRINGS")?;
        let data = need(data, "TENSOR_DATA")?;
        if index.len % TENSOR_ENTRY_SIZE as u64 != 0 {
            return Err(Error::BadField {
                field: "TENSOR_INDEX length",
                offset: index.offset,
                value: index.len,
                expected: "a multiple of 64",
            });
        }
        let slice = |r: Region| &bytes[r.offset as usize..(r.offset + r.len) as usize];
        let blob = Blob {
            bytes,
            config,
            flags,
            checksum: stored,
            index: slice(index),
            strings: slice(strings),
            labels: labels.map(slice),
            tokenizer: tokenizer.map(slice),
        };
        blob.validate_tensors(index.offset, data)?;
        blob.validate_labels(labels.map(|r| r.offset).unwrap_or(0))?;
        Ok(blob)
    }

    /// The whole blob.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.index.len() / TENSOR_ENTRY_SIZE
    }

    /// The `i`-th tensor (already validated by `parse`).
    pub fn tensor_at(&self, i: usize) -> TensorInfo<'a> {
        // parse() validated every entry, so this cannot fail.
        self.decode_entry(i, 0, Region { offset: 0, len: self.bytes.len() as u64 })
            .unwrap_or_else(|_| unreachable!("entry validated by Blob::parse"))
    }

    /// Iterates over all tensors.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + '_ {
        (0..self.tensor_count()).map(|i| self.tensor_at(i))
    }

    /// Looks a tensor up by name (comparing the stored names, then decoding the match).
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        (0..self.tensor_count()).find(|&i| self.entry_name(i) == name.as_bytes()).map(|i| self.tensor_at(i))
    }

    /// Entry `i`'s name bytes, read without decoding the entry: only for entries already
    /// validated (by `parse`, or earlier in [`Blob::validate_tensors`]); empty otherwise.
    fn entry_name(&self, i: usize) -> &'a [u8] {
        let e = &self.index[i * TENSOR_ENTRY_SIZE..(i + 1) * TENSOR_ENTRY_SIZE];
        let (off, len) = (u32_at(e, 0) as usize, u32_at(e, 4) as usize);
        off.checked_add(len).and_then(|end| self.strings.get(off..end)).unwrap_or(&[])
    }

    /// Entry `i`'s data region and scale region (if quantized), as file offsets, read without
    /// decoding: for validated entries only, as [`Blob::entry_name`].
    fn entry_regions(&self, i: usize) -> (Region, Option<Region>) {
        let e = &self.index[i * TENSOR_ENTRY_SIZE..(i + 1) * TENSOR_ENTRY_SIZE];
        let data = Region { offset: u64_at(e, 32), len: u64_at(e, 40) };
        let scales = (e[9] != quant::NONE).then(|| Region { offset: u64_at(e, 48), len: u64_at(e, 56) });
        (data, scales)
    }

    /// The bytes of the `TOKENIZER` section, when the blob has one (validated by
    /// [`crate::Tokenizer::from_section`], not here).
    pub fn tokenizer_section(&self) -> Option<&'a [u8]> {
        self.tokenizer
    }

    /// The label of class `i` (`id2label`), when the blob has labels.
    pub fn label(&self, i: usize) -> Option<&'a str> {
        let l = self.labels?;
        let at = i.checked_mul(8)?;
        if at + 8 > l.len() {
            return None;
        }
        let off = u32_at(l, at) as usize;
        let len = u32_at(l, at + 4) as usize;
        core::str::from_utf8(self.strings.get(off..off.checked_add(len)?)?).ok()
    }

    /// Number of labels stored.
    pub fn label_count(&self) -> usize {
        self.labels.map_or(0, |l| l.len() / 8)
    }

    fn validate_labels(&self, offset: u64) -> Result<(), Error> {
        let Some(l) = self.labels else { return Ok(()) };
        if l.len() % 8 != 0 {
            return Err(Error::BadField {
                field: "LABELS length",
                offset,
                value: l.len() as u64,
                expected: "a multiple of 8",
            });
        }
        if l.len() / 8 != self.config.num_labels as usize {
            return Err(Error::BadField {
                field: "LABELS length",
                offset,
                value: l.len() as u64,
                expected: "8 bytes for each of num_labels labels",
            });
        }
        for i in 0..l.len() / 8 {
            if self.label(i).is_none() {
                return Err(Error::BadField {
                    field: "label string",
                    offset: offset + 8 * i as u64,
                    value: i as u64,
                    expected: "a UTF-8 string inside STRINGS",
                });
            }
        }
        Ok(())
    }

    fn decode_entry(&self, i: usize, index_offset: u64, data: Region) -> Result<TensorInfo<'a>, Error> {
        let e = &self.index[i * TENSOR_ENTRY_SIZE..(i + 1) * TENSOR_ENTRY_SIZE];
        let at = index_offset + (i * TENSOR_ENTRY_SIZE) as u64;
        let name_off = u32_at(e, 0) as usize;
        let name_len = u32_at(e, 4) as usize;
        let bad_name = Error::BadTensorName { entry: i as u32, offset: at };
        if name_len == 0 || name_len > 255 {
            return Err(bad_name);
        }
        let nm = name_off
            .checked_add(name_len)
            .and_then(|end| self.strings.get(name_off..end))
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or(bad_name)?;
        let dtype = DType::from_code(e[8] as u32)
            .ok_or(Error::BadTensorEncoding { name: name(nm), detail: "unknown dtype code" })?;
        let (q, layout, ndim) = (e[9], e[10], e[11]);
        if u32_at(e, 12) != 0 {
            return Err(Error::BadTensorEncoding {
                name: name(nm),
                detail: "reserved bytes 12..16 of the entry are not 0",
            });
        }
        let mut shape = [0u32; 4];
        for (d, s) in shape.iter_mut().enumerate() {
            *s = u32_at(e, 16 + 4 * d);
        }
        let enc = |detail| Error::BadTensorEncoding { name: name(nm), detail };
        if !(1..=4).contains(&ndim) {
            return Err(enc("ndim must be 1..=4"));
        }
        if shape.contains(&0) || shape[ndim as usize..].iter().any(|&d| d != 1) {
            return Err(enc("shape has a zero dimension or unused dimensions other than 1"));
        }
        if layout != 0 {
            return Err(enc("unknown weight layout code (blob needs a newer engine)"));
        }
        // Four u32 dimensions can overflow u64: such a shape cannot match any data length.
        let bytes_needed = shape.iter().try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
        let data_off = u64_at(e, 32);
        let data_len = u64_at(e, 40);
        if bytes_needed != Some(data_len) {
            return Err(enc("data length disagrees with shape and dtype"));
        }
        aligned("tensor data", data_off, ALIGN as u64)?;
        in_region("tensor data", data_off, data_len, data)?;
        let t_data = &self.bytes[data_off as usize..(data_off + data_len) as usize];
        let scale_off = u64_at(e, 48);
        let scale_len = u64_at(e, 56);
        let scales = match q {
            quant::NONE => {
                if scale_off != 0 || scale_len != 0 {
                    return Err(enc("unquantized tensor with scale fields set"));
                }
                None
            }
            quant::PER_ROW_SYMMETRIC | quant::PER_ROW_SYMMETRIC_A16 | quant::PER_ROW_SYMMETRIC_A7 => {
                if dtype != DType::I8 {
                    return Err(enc("per-row quantization needs dtype int8"));
                }
                if scale_len != 4 * shape[0] as u64 {
                    return Err(enc("scale length is not 4 bytes per row"));
                }
                aligned("tensor scales", scale_off, ALIGN as u64)?;
                in_region("tensor scales", scale_off, scale_len, data)?;
                if overlaps(Region { offset: data_off, len: data_len }, Region { offset: scale_off, len: scale_len }) {
                    return Err(Error::Overlap { what: "tensor scales", offset: scale_off });
                }
                let s = &self.bytes[scale_off as usize..(scale_off + scale_len) as usize];
                let s: &[f32] = bytemuck::try_cast_slice(s).map_err(|_| enc("scales misaligned"))?;
                if s.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                    return Err(enc("a scale is zero, negative or not finite"));
                }
                Some(s)
            }
            _ => return Err(enc("unknown quantization code")),
        };
        if dtype == DType::I8 && scales.is_none() {
            return Err(enc("int8 tensor without scales"));
        }
        Ok(TensorInfo { name: nm, dtype, quant: q, layout, ndim, shape, data: t_data, scales })
    }

    fn validate_tensors(&self, index_offset: u64, data: Region) -> Result<(), Error> {
        let n = self.tensor_count();
        for i in 0..n {
            let t = self.decode_entry(i, index_offset, data)?;
            let (d, s) = self.entry_regions(i);
            // Entries before `i` were decoded (validated) in their own turn: compare their
            // raw fields (a quadratic loop of full decodes cost a minute per load under Miri).
            for j in 0..i {
                if self.entry_name(j) == t.name.as_bytes() {
                    return Err(Error::DuplicateTensor { name: name(t.name) });
                }
                let (ud, us) = self.entry_regions(j);
                let clash = overlaps(d, ud)
                    || s.is_some_and(|s| overlaps(s, ud) || us.is_some_and(|us| overlaps(s, us)))
                    || us.is_some_and(|us| overlaps(d, us));
                if clash {
                    return Err(Error::Overlap {
                        what: "tensor data (shared with an earlier tensor)",
                        offset: d.offset,
                    });
                }
            }
        }
        Ok(())
    }
}

fn first8(b: &[u8]) -> [u8; 8] {
    let mut m = [0u8; 8];
    let n = b.len().min(8);
    m[..n].copy_from_slice(&b[..n]);
    m
}

fn field(ok: bool, field: &'static str, offset: u64, value: u64, expected: &'static str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(Error::BadField { field, offset, value, expected }) }
}

fn aligned(what: &'static str, offset: u64, align: u64) -> Result<(), Error> {
    if offset.is_multiple_of(align) { Ok(()) } else { Err(Error::Misaligned { what, offset, align }) }
}

fn in_bounds(what: &'static str, offset: u64, len: u64, limit: u64) -> Result<(), Error> {
    match offset.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(Error::OutOfBounds { what, offset, len, limit }),
    }
}

fn in_region(what: &'static str, offset: u64, len: u64, r: Region) -> Result<(), Error> {
    let end = offset.checked_add(len);
    match end {
        Some(end) if offset >= r.offset && end <= r.offset + r.len => Ok(()),
        _ => Err(Error::OutOfBounds { what, offset, len, limit: r.offset + r.len }),
    }
}

fn overlaps(a: Region, b: Region) -> bool {
    a.len != 0 && b.len != 0 && a.offset < b.offset + b.len && b.offset < a.offset + a.len
}
