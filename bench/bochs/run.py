#!/usr/bin/env python3
"""Run the engine's x86 int8 GEMM kernels inside the Bochs CPU emulator and check them
bit for bit against the scalar reference (see README.md in this folder).

    python3 bench/bochs/run.py --model 31 --expect avxvnni,avx2     # AVX2 + AVX-VNNI client core
    python3 bench/bochs/run.py --model 30 --expect vnni,avxvnni     # Sapphire Rapids, no AMX
    python3 bench/bochs/run.py --model 31 --forward models/albert-pydoc.albq --ids 2,31,7,118,954,40,5,3 \
        --expect avxvnni                                            # a forward pass vs the host's

Builds harness/ (a no_std static ELF) with the model's target features, loads its PT_LOAD
segments into an emulated long-mode address space, runs it at CPL 3 until it executes
`hlt` (a #GP in user mode: the end signal, with the report's address in RAX), reads the
report and exits 0 only if every case matched, nothing panicked or faulted, and every
`--expect`ed kernel ran. Needs the `bochscpu` Python package (bochscpu-python); nothing else
beyond the standard library and cargo.
"""

import argparse
import ctypes
import json
import glob
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HARNESS = os.path.join(HERE, "harness")
TARGET = "x86_64-unknown-linux-gnu"
REPORT_SYMBOL = "ALBERT_BOCHS_REPORT"

# Bochs CPU models, by index of the `cpu.model` enum (the indices past the enum's named
# list are reached by widening its range; 32 and up crash). What CPUID reports for each:
MODELS = {
    31: dict(
        about="client core with AVX2, FMA and AVX-VNNI, no AVX-512 (Arrow Lake-like)",
        xcr0=0x7,  # x87 | SSE | AVX
        build="avxvnni",
    ),
    30: dict(
        about="Sapphire Rapids without AMX (AVX-512F/BW/DQ/VL, AVX-512 VNNI, AVX-VNNI)",
        xcr0=0xE7,  # x87 | SSE | AVX | opmask | ZMM_Hi256 | Hi16_ZMM
        build="avx512",
    ),
}

# Target features of the two builds (the second adds AVX-512 to the first).
BUILDS = {
    "avxvnni": "+avx2,+fma,+avxvnni",
    "avx512": "+avx2,+fma,+avxvnni,+avx512f,+avx512bw,+avx512vl,+avx512vnni,+avx512dq",
}

# The bochscpu wheel is linked against glibc 2.38 (C23 names of strtoull and sscanf);
# older glibcs (Debian 12: 2.36) get these two forwarders by LD_PRELOAD.
SHIM_C = r"""
#include <stdlib.h>
#include <stdio.h>
#include <stdarg.h>
unsigned long long __isoc23_strtoull(const char *s, char **e, int b) { return strtoull(s, e, b); }
int __isoc23_sscanf(const char *s, const char *fmt, ...) { va_list ap; va_start(ap, fmt); int r = vsscanf(s, fmt, ap); va_end(ap); return r; }
"""
SHIM_BUILD = "gcc -shared -fPIC -O2 -o {so} {c}"

FEATURE_BITS = ["avx2", "fma", "avxvnni", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vnni"]
FORMS = ["gemm_i8_i32", "gemm_i8_i32_sums", "gemm_i16_i8_i64", "gemm_i16_i8_i64_sums"]
PATTERNS = ["random (1/7 extremes)", "all minimum", "activations max, weights min"]
VECTORS = {0: "#DE", 1: "#DB", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD (invalid opcode)", 7: "#NM",
           8: "#DF", 12: "#SS", 13: "#GP", 14: "#PF (page fault)", 16: "#MF", 17: "#AC", 19: "#XM (SIMD FP)"}

# Report layout: `struct Report` in harness/src/main.rs (repr(C), no padding in this order).
CASE = "8Iqq"  # kernel, form, pattern, m, n, k, row, col, expected, got
REPORT = "<8sIIQQ" + CASE + "II" + "256s" + "16Q" + "16Q" + CASE + "II" + "256s"
REPORT_SIZE = struct.calcsize(REPORT)


def glibc_older_than(major, minor):
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return False
    return tuple(int(x) for x in version.split(".")[:2]) < (major, minor)


def ensure_shim(cache_dir):
    """Re-executes this script under LD_PRELOAD of the glibc 2.38 shim where needed."""
    if os.environ.get("ALBERT_BOCHS_SHIM_DONE") or not glibc_older_than(2, 38):
        return
    os.makedirs(cache_dir, exist_ok=True)
    c, so = os.path.join(cache_dir, "shim.c"), os.path.join(cache_dir, "libshim.so")
    if not os.path.exists(so):
        with open(c, "w") as f:
            f.write(SHIM_C)
        subprocess.run(SHIM_BUILD.format(so=so, c=c), shell=True, check=True)
    env = dict(os.environ, ALBERT_BOCHS_SHIM_DONE="1")
    env["LD_PRELOAD"] = (so + " " + env.get("LD_PRELOAD", "")).strip()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


# ---------------------------------------------------------------------------------------
# ELF64 (little-endian, x86-64): program headers to load, the symbol table for names.

class Elf:
    def __init__(self, path):
        self.data = data = open(path, "rb").read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit(f"{path}: not a little-endian ELF64 file")
        (e_type, e_machine, _, self.entry, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        if e_machine != 62:
            raise SystemExit(f"{path}: not x86-64 (e_machine {e_machine})")
        if e_type != 2:
            raise SystemExit(f"{path}: not a static non-PIE executable (e_type {e_type}; 2 = ET_EXEC)")
        self.segments = []  # (vaddr, file bytes, memsz, writable)
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == 2 or p_type == 3:  # PT_DYNAMIC, PT_INTERP
                raise SystemExit(f"{path}: dynamically linked; build it static (see README.md)")
            if p_type == 1:  # PT_LOAD
                self.segments.append((p_vaddr, data[p_offset:p_offset + p_filesz], p_memsz, bool(p_flags & 2)))
        self.symbols = []  # (value, size, name, is_function)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        for sh_name, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize in sections:
            if sh_type != 2:  # SHT_SYMTAB
                continue
            stroff = sections[sh_link][4]
            for off in range(sh_offset, sh_offset + sh_size, sh_entsize):
                st_name, st_info, _, _, st_value, st_size = struct.unpack_from("<IBBHQQ", data, off)
                end = data.index(b"\0", stroff + st_name)
                self.symbols.append((st_value, st_size, data[stroff + st_name:end].decode(), st_info & 15 == 2))

    def symbol(self, name):
        return next((v for v, _, n, _ in self.symbols if n == name), None)

    def function_at(self, addr):
        for v, size, name, func in self.symbols:
            if func and v <= addr < v + max(size, 1):
                return name
        return None


# ---------------------------------------------------------------------------------------
# The emulator.

def bochs_lib():
    try:
        import bochscpu
    except ImportError as e:
        raise SystemExit(f"cannot import bochscpu ({e}): pip install bochscpu-python==0.4.0") from e
    so = glob.glob(os.path.join(os.path.dirname(bochscpu.__file__), "_bochscpu*.so"))[0]
    return ctypes.CDLL(so)


def set_model(index):
    """Bochs's `cpu: model=` by enum index, before the first Session. (By name,
    `bx_param_enum_c::set_by_name`, does not find the models past the enum's named list,
    which are the ones needed here.)"""
    lib = bochs_lib()
    lib.sim_get_param_enum.restype = ctypes.c_void_p
    lib.sim_get_param_enum.argtypes = [ctypes.c_char_p]
    param = lib.sim_get_param_enum(b"cpu.model")
    widen = lib._ZN14bx_param_num_c9set_rangeEmm
    widen.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    widen(param, 0, 60)
    choose = lib._ZN15bx_param_enum_c3setEl
    choose.argtypes = [ctypes.c_void_p, ctypes.c_long]
    choose(param, index)


STACK_TOP = 0x7FFF_0000_0000
STACK_SIZE = 1 << 20  # 1 MiB; the page below it is left unmapped (a guard)


def emulate(elf, model, xcr0, regions=(), rdi=0):
    """`regions`: more (vaddr, bytes, memsz, writable) areas to map, as PT_LOAD segments;
    `rdi`: RDI at entry (the forward mode's header address; 0 for the GEMM sweep)."""
    import bochscpu
    import bochscpu.cpu
    import bochscpu.memory as mem

    set_model(model)
    page = mem.page_size()
    sess = bochscpu.Session()

    def missing(gpa):
        raise RuntimeError(f"missing guest-physical page {gpa:#x}")

    sess.missing_page_handler = missing

    # Pages: the union of the PT_LOAD segments (file bytes, then zeros up to memsz).
    pages = {}  # gva -> [bytearray, writable]
    for vaddr, blob, memsz, writable in list(elf.segments) + list(regions):
        for gva in range(vaddr & ~(page - 1), vaddr + memsz, page):
            entry = pages.setdefault(gva, [bytearray(page), False])
            entry[1] |= writable
        # Copy the file bytes page by page.
        pos = 0
        while pos < len(blob):
            gva = vaddr + pos
            base, off = gva & ~(page - 1), gva & (page - 1)
            take = min(page - off, len(blob) - pos)
            pages[base][0][off:off + take] = blob[pos:pos + take]
            pos += take
    for gva in range(STACK_TOP - STACK_SIZE, STACK_TOP, page):
        pages[gva] = [bytearray(page), True]

    pt = mem.PageMapLevel4Table()
    next_gpa = 0x1000_0000
    for gva, (_, writable) in sorted(pages.items()):
        hva = mem.allocate_host_page()
        mem.page_insert(next_gpa, hva)
        pt.insert(gva, next_gpa, 1 if writable else 0)  # 1: writable, 0: read-only (both executable)
        next_gpa += page
    pml4 = 0x100000
    for hva, gpa in pt.commit(pml4):
        mem.page_insert(gpa, hva)
    zero = bytes(page)
    for gva, (content, _) in pages.items():
        if content != zero:
            assert mem.virt_write(pml4, gva, list(content)), f"cannot write {gva:#x}"

    st = bochscpu.State()
    bochscpu.cpu.set_long_mode(st)
    st.cr3 = pml4
    st.cr4 = st.cr4 | (1 << 9) | (1 << 10) | (1 << 18)  # OSFXSR | OSXMMEXCPT | OSXSAVE
    st.xcr0 = xcr0
    st.rsp = STACK_TOP
    st.rip = elf.entry
    st.rdi = rdi
    # A process's floating-point state on Linux: every exception masked, round to nearest,
    # no flush-to-zero (Bochs starts from 0: unmasked, a float op would raise #XM).
    st.mxcsr = 0x1F80
    st.fpcw = 0x37F
    cs = bochscpu.Segment()
    cs.present, cs.selector, cs.base, cs.limit, cs.attr = True, 0x33, 0, 0xFFFFFFFF, 0x22FB  # 64-bit, DPL 3
    ds = bochscpu.Segment()
    ds.present, ds.selector, ds.base, ds.limit, ds.attr = True, 0x2B, 0, 0xFFFFFFFF, 0xCF3
    st.cs, st.ds, st.ss, st.es, st.fs, st.gs = cs, ds, ds, ds, ds, ds
    sess.cpu.state = st

    events = []

    def exception(sess_, cpu_id, vector, error_code):
        events.append((int(vector), int(error_code)))
        sess_.stop()

    hook = bochscpu.Hook()
    hook.exception = exception
    t0 = time.monotonic()
    sess.run([hook])
    if os.environ.get("ALBERT_BOCHS_DEBUG"):
        print(f"debug: {len(pages)} pages mapped; Session.run {time.monotonic() - t0:.1f} s")
    out = sess.cpu.state

    def read(gva, n, _keep=(sess, pt)):
        # virt_read of an unmapped address crashes the process: check every page first.
        # (`_keep`: the page tables, owned by `pt`, must outlive this function.)
        first, last = gva & ~(page - 1), (gva + n - 1) & ~(page - 1)
        if n <= 0 or any(p not in pages for p in range(first, last + 1, page)):
            return None
        return bytes(mem.virt_read(pml4, gva, n))

    return out, read, events


# ---------------------------------------------------------------------------------------
# Build.

def build(kind, target_dir, offline):
    rustflags = " ".join([
        "-C relocation-model=static",
        f"-C target-feature={BUILDS[kind]}",
        "-C link-arg=-nostartfiles",
        "-C link-arg=-nostdlib",
        "-C link-arg=-static",
        "-C link-arg=-no-pie",
    ])
    out_dir = os.path.join(target_dir, kind)
    env = dict(os.environ, RUSTFLAGS=rustflags, CARGO_TARGET_DIR=out_dir)
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    cmd = ["cargo", "build", "--release", "--target", TARGET,
           "--manifest-path", os.path.join(HARNESS, "Cargo.toml")] + (["--offline"] if offline else [])
    print(f"build: RUSTFLAGS=\"{rustflags}\" CARGO_TARGET_DIR={out_dir} {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True)
    return os.path.join(out_dir, TARGET, "release", "albert-bochs-harness")


def disassemble(elf_path, rip):
    """The instruction that ends at `rip` (Bochs reports the address after a faulting
    instruction), via objdump where installed."""
    if not shutil.which("objdump"):
        return None
    r = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "intel",
                        f"--start-address={max(rip - 64, 0):#x}", f"--stop-address={rip + 16:#x}", elf_path],
                       capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip() and ln.strip()[0] in "0123456789abcdef" and ":" in ln]
    prev = None
    for ln in lines:
        try:
            addr = int(ln.split(":")[0].strip(), 16)
        except ValueError:
            continue
        if addr == rip:
            return prev
        prev = ln.strip()
    return None


def demangle(name):
    if name and shutil.which("c++filt"):
        r = subprocess.run(["c++filt", name], capture_output=True, text=True)
        return r.stdout.strip() or name
    return name


def parse_report(raw):
    v = struct.unpack(REPORT, raw[:REPORT_SIZE])
    it = iter(v)
    take = lambda n: [next(it) for _ in range(n)]
    r = {}
    r["magic"], r["size"], r["state"], r["cases"], r["mismatches"] = take(5)
    r["first"] = dict(zip(["kernel", "form", "pattern", "m", "n", "k", "row", "col", "expected", "got"], take(10)))
    r["kernel_count"], r["features"] = take(2)
    names = next(it)
    r["names"] = [names[i * 16:(i + 1) * 16].split(b"\0")[0].decode() for i in range(16)][:r["kernel_count"]]
    r["kernel_cases"] = take(16)
    r["kernel_mismatches"] = take(16)
    r["current"] = dict(zip(["kernel", "form", "pattern", "m", "n", "k", "row", "col", "expected", "got"], take(10)))
    r["panic_len"], _ = take(2)
    r["panic"] = next(it)[:r["panic_len"]].decode(errors="replace")
    return r


def describe_case(c, names):
    name = names[c["kernel"]] if c["kernel"] < len(names) else f"#{c['kernel']}"
    return (f"kernel {name}, {FORMS[c['form']] if c['form'] < 4 else c['form']}, "
            f"m={c['m']} n={c['n']} k={c['k']}, data {PATTERNS[c['pattern']] if c['pattern'] < 3 else c['pattern']}")

# ---------------------------------------------------------------------------------------
# The forward mode: one forward pass of a model blob, compared with the host's.

# `forward::Header` in harness/src/forward.rs (repr(C), no padding in this order).
FWD_MAX_IDS = 512
FWD_MAX_SECTIONS = 8
FWD_SECTION = "24sQQQ"
FWD_INPUT = "<8sII" + "6Q" + "II" + f"{FWD_MAX_IDS}I" + f"{FWD_MAX_IDS}I"
FWD_HEADER = FWD_INPUT + "II16sQQ" + FWD_SECTION * FWD_MAX_SECTIONS + "II256s"
FWD_HEADER_SIZE = struct.calcsize(FWD_HEADER)
FWD_MAGIC = b"ALBFWD01"
# Where the runner maps the forward mode's areas (each followed by unmapped space).
FWD_HEADER_ADDR = 0x5000_0000_0000
FWD_BLOB_ADDR = 0x5100_0000_0000
FWD_SCRATCH_ADDR = 0x5200_0000_0000
FWD_OUT_ADDR = 0x5300_0000_0000
FWD_GUARD = 1024  # f32 elements past the outputs that must keep the marker
FWD_MARK = 0x7FBADBAD  # a NaN no computation produces


def parse_ids(text, what):
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SystemExit(f"{what}: not a comma-separated list of integers: {text!r}")
    if not ids or len(ids) > FWD_MAX_IDS or any(not 0 <= i < 2**32 for i in ids):
        raise SystemExit(f"{what}: 1 to {FWD_MAX_IDS} non-negative ids needed")
    return ids


def f32_bits(token):
    """Bits of the f32 nearest to the decimal `token` (ties to even): exact, not through a
    double (decimal -> f64 -> f32 could round twice). `albert forward --json` prints f32
    in their shortest round-trip form, so this gives back the host's bits."""
    q = Fraction(token)
    guess = struct.unpack("<I", struct.pack("<f", float(token)))[0]
    best = None
    for bits in (guess - 1, guess, guess + 1):
        if not 0 <= bits < 2**32 or (bits & 0x7F800000) == 0x7F800000:
            continue
        if bits >> 31 != guess >> 31:  # crossing zero: stay on the guess's side
            continue
        v = Fraction(struct.unpack("<f", struct.pack("<I", bits))[0])
        key = (abs(v - q), bits & 1)  # nearest, then even mantissa
        if best is None or key < best[0]:
            best = (key, bits)
    return best[1]


def native_forward(args, target_dir):
    """The host's forward pass: `albert forward --json` of the host build (the host's best
    kernel, std float loops). Returns ([(name, width, [bits])], kernel, float loops)."""
    albert = args.albert
    if not albert:
        out_dir = os.path.join(target_dir, "native")
        env = dict(os.environ, CARGO_TARGET_DIR=out_dir)
        cmd = ["cargo", "build", "--release", "-p", "albert-tools", "--bin", "albert",
               "--manifest-path", os.path.join(REPO, "Cargo.toml")] + (["--offline"] if args.offline else [])
        print(f"native build: CARGO_TARGET_DIR={out_dir} {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, env=env, check=True)
        albert = os.path.join(out_dir, "release", "albert")
    cmd = [albert, "forward", "--model", args.forward, "--ids", args.ids, "--json"]
    if args.type_ids:
        cmd += ["--type-ids", args.type_ids]
    print("native: " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - t0
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise SystemExit(f"native forward: expected one JSON line, got {len(lines)}")
    doc = json.loads(lines[0], parse_float=str, parse_int=str)  # keep the decimal text
    sections = []
    for name, value in doc.items():
        rows = value if value and isinstance(value[0], list) else [value]
        width = len(rows[0]) if rows else 0
        flat = [x for row in rows for x in row]
        if any(x is None for x in flat):
            raise SystemExit(f"native forward: {name} has a non-finite value (JSON null); bits cannot be compared")
        sections.append((name, width, [f32_bits(x) for x in flat]))
    k = subprocess.run([albert, "inspect", "--kernels", "--json"], capture_output=True, text=True)
    try:
        info = json.loads(k.stdout)
        kernel, loops = info.get("selected", "?"), info.get("float_loops", "?")
    except ValueError:
        kernel, loops = "?", "?"
    return sections, kernel, loops, seconds


def run_forward(args, model_id, model, kind, elf_path, elf, xcr0):
    ids = parse_ids(args.ids, "--ids")
    types = parse_ids(args.type_ids, "--type-ids") if args.type_ids else None
    if types is not None and len(types) != len(ids):
        raise SystemExit("--type-ids: one per --ids entry")
    blob = open(args.forward, "rb").read()
    native, native_kernel, native_loops, native_s = native_forward(args, args.target_dir)
    total = sum(len(b) for _, _, b in native)
    print(f"native: {native_s:.2f} s, kernel {native_kernel}, float loops {native_loops}, "
          f"{total} outputs ({', '.join(f'{n} {len(b)}' for n, _, b in native)})")

    page = 4096
    scratch_len = args.scratch_mib << 20
    out_cap = total + FWD_GUARD
    header = struct.pack(
        FWD_INPUT, FWD_MAGIC, FWD_HEADER_SIZE, len(ids),
        FWD_BLOB_ADDR, len(blob), FWD_SCRATCH_ADDR, scratch_len, FWD_OUT_ADDR, out_cap,
        1 if types else 0, 0,
        *(ids + [0] * (FWD_MAX_IDS - len(ids))), *((types or []) + [0] * (FWD_MAX_IDS - len(types or []))))
    header += bytes(FWD_HEADER_SIZE - len(header))
    marks = struct.pack("<I", FWD_MARK) * out_cap
    regions = [
        (FWD_HEADER_ADDR, header, FWD_HEADER_SIZE, True),
        (FWD_BLOB_ADDR, blob, len(blob), False),
        (FWD_SCRATCH_ADDR, b"", scratch_len, True),
        (FWD_OUT_ADDR, marks, 4 * out_cap, True),
    ]
    print(f"model: {model_id} ({model['about']}), XCR0={xcr0:#x}")
    print(f"elf: {elf_path} (entry {elf.entry:#x}, {len(elf.segments)} PT_LOAD segments)")
    print(f"forward: {args.forward} ({len(blob)} bytes) at {FWD_BLOB_ADDR:#x}, {len(ids)} ids, "
          f"scratch {args.scratch_mib} MiB", flush=True)
    t0 = time.monotonic()
    st, read, events = emulate(elf, model_id, xcr0, regions, rdi=FWD_HEADER_ADDR)
    seconds = time.monotonic() - t0
    print(f"emulated run: {seconds:.1f} s wall")

    problems = []
    if not events:
        problems.append("the emulator stopped without an exception (no end signal)")
    else:
        vector, error_code = events[-1]
        if not (vector == 13 and read(st.rip - 1, 1) == b"\xf4"):
            problems.append(describe_exception(elf, elf_path, st, vector, error_code, args, kind))
        elif st.rax != FWD_HEADER_ADDR:
            problems.append(f"RAX at hlt is {st.rax:#x}, not the forward header {FWD_HEADER_ADDR:#x}"
                            " (the GEMM sweep ran? the harness predates the forward mode?)")
    raw = read(FWD_HEADER_ADDR, FWD_HEADER_SIZE)
    v = list(struct.unpack(FWD_HEADER, raw))
    res = v[len(struct.unpack(FWD_INPUT, raw[:struct.calcsize(FWD_INPUT)])):]
    state, count, kernel, needed, out_len = res[:5]
    secs = [res[5 + 4 * i:9 + 4 * i] for i in range(FWD_MAX_SECTIONS)][:count]
    msg = res[-1][:res[-3]].decode(errors="replace")
    kernel = kernel.split(b"\0")[0].decode()
    print(f"harness: kernel {kernel}, float loops scalar (no std), scratch needed {needed} bytes, {out_len} outputs")
    if state == 2:
        problems.append(f"harness panicked: {msg}")
    elif state == 3:
        problems.append(f"harness error: {msg}")
    elif state != 1 and not problems:
        problems.append(f"harness ended in state {state}")
    if args.expect and kernel not in args.expect.split(","):
        problems.append(f"kernel {kernel} ran, expected {args.expect}")

    if state == 1:
        got = read(FWD_OUT_ADDR, 4 * out_cap)
        words = struct.unpack(f"<{out_cap}I", got)
        names = [(s[0].split(b"\0")[0].decode(), s[1], s[2], s[3]) for s in secs]
        if [(n, ln) for n, _, ln, _ in names] != [(n, len(b)) for n, _, b in native]:
            problems.append("outputs differ in shape: harness " +
                            ", ".join(f"{n} {ln}" for n, _, ln, _ in names) +
                            "; native " + ", ".join(f"{n} {len(b)}" for n, _, b in native))
        else:
            differing = 0
            first = None
            for (name, off, ln, width), (_, _, want) in zip(names, native):
                for i in range(ln):
                    if words[off + i] != want[i]:
                        differing += 1
                        if first is None:
                            first = (name, i, width, ln, want[i], words[off + i])
            tail = [i for i in range(out_len, out_cap) if words[i] != FWD_MARK]
            if tail:
                problems.append(f"{len(tail)} elements past the outputs overwritten (first at {tail[0]})")
            f = lambda b: struct.unpack("<f", struct.pack("<I", b))[0]
            print(f"compared: {total} f32 outputs bit for bit, {differing} differing")
            if first:
                name, i, width, ln, want, have = first
                where = f"[{i // width}][{i % width}]" if 0 < width < ln else f"[{i}]"
                problems.append(f"{differing} of {total} outputs differ; first: {name}{where}: "
                                f"native {f(want)!r} ({want:#010x}), emulated {f(have)!r} ({have:#010x})")

    if problems:
        for p in problems:
            print("FAIL: " + p)
        sys.exit(1)
    print(f"PASS: the emulated forward pass (kernel {kernel}) gives the host's bits (kernel {native_kernel})")


def describe_exception(elf, elf_path, st, vector, error_code, args, kind):
    rip = st.rip
    what = VECTORS.get(vector, f"vector {vector}")
    insn = disassemble(elf_path, rip)
    func = demangle(elf.function_at(rip - 1))
    msg = f"unexpected exception {what}, error code {error_code:#x}, RIP after it {rip:#x}"
    if func:
        msg += f"\n    in {func}"
    if insn:
        msg += f"\n    instruction: {insn}"
    if vector == 6:
        msg += ("\n    the emulated CPU (model %d) lacks an instruction this build uses (build features %s),"
                "\n    or Bochs does not emulate it" % (args.model, BUILDS.get(kind, "?") if not args.elf else "of the given ELF"))
    if vector == 14:
        cr2 = st.cr2
        msg += f"\n    faulting address (CR2) {cr2:#x}"
        if STACK_TOP - STACK_SIZE - 65536 <= cr2 < STACK_TOP - STACK_SIZE:
            msg += " (below the stack: stack overflow, raise STACK_SIZE)"
    return msg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=int, default=31,
                    help="Bochs CPU model index: 31 = AVX2 + AVX-VNNI client core, 30 = Sapphire Rapids without AMX; "
                         "another index (24 = Haswell: AVX2, no AVX-VNNI) needs --build; 32 and up crash")
    ap.add_argument("--build", choices=sorted(BUILDS),
                    help="target features to build with (default: the model's: 31 avxvnni, 30 avx512)")
    ap.add_argument("--elf", help="run this harness ELF instead of building one")
    ap.add_argument("--target-dir", default=os.environ.get("ALBERT_BOCHS_TARGET_DIR", os.path.join(REPO, "target", "bochs-harness")),
                    help="cargo target directory root (one sub-directory per build; default: <repo>/target/bochs-harness)")
    ap.add_argument("--offline", action="store_true", help="pass --offline to cargo")
    ap.add_argument("--xcr0", type=lambda s: int(s, 0), help="XCR0 value (default: the model's)")
    ap.add_argument("--expect", default="", help="comma-separated kernel names that must have run, e.g. avxvnni,avx2 "
                    "(with --forward: the kernel the harness must have selected)")
    ap.add_argument("--forward", metavar="BLOB",
                    help="instead of the GEMM sweep: one forward pass of this .albq blob (mapped into emulated "
                         "memory), compared bit for bit with the host's `albert forward --json`")
    ap.add_argument("--ids", help="with --forward: comma-separated token ids of the sequence, e.g. 2,31,7,118,3")
    ap.add_argument("--type-ids", help="with --forward: comma-separated token type ids (default all 0)")
    ap.add_argument("--scratch-mib", type=int, default=32, help="with --forward: scratch area to map (MiB)")
    ap.add_argument("--albert", help="with --forward: a host `albert` binary to use instead of building one")
    args = ap.parse_args()

    ensure_shim(os.path.join(args.target_dir, "shim"))
    bochs_lib()  # fail before building if the module cannot load
    model_id = args.model
    if model_id in MODELS:
        model = MODELS[model_id]
    elif args.build:
        model = dict(about="see README.md", xcr0=0xE7 if args.build == "avx512" else 0x7, build=args.build)
    else:
        raise SystemExit(f"--model {args.model}: give --build (one of {', '.join(sorted(BUILDS))})")
    kind = args.build or model["build"]
    elf_path = args.elf or build(kind, args.target_dir, args.offline)
    elf = Elf(elf_path)
    report_addr = elf.symbol(REPORT_SYMBOL)
    xcr0 = args.xcr0 if args.xcr0 is not None else model["xcr0"]
    if args.forward:
        if not args.ids:
            raise SystemExit("--forward needs --ids")
        return run_forward(args, model_id, model, kind, elf_path, elf, xcr0)

    print(f"model: {args.model} ({model['about']}), XCR0={xcr0:#x}")
    print(f"elf: {elf_path} (entry {elf.entry:#x}, {len(elf.segments)} PT_LOAD segments)", flush=True)
    t0 = time.monotonic()
    st, read, events = emulate(elf, model_id, xcr0)
    seconds = time.monotonic() - t0

    problems = []
    finished = False
    if os.environ.get("ALBERT_BOCHS_DEBUG"):
        print(f"debug: events {events}, rip {st.rip:#x}, rax {st.rax:#x}, rsp {st.rsp:#x}, cr2 {st.cr2:#x}")
    if not events:
        problems.append("the emulator stopped without an exception (no end signal)")
    else:
        vector, error_code = events[-1]
        rip = st.rip
        ended_on_hlt = vector == 13 and read(rip - 1, 1) == b"\xf4"
        if ended_on_hlt:
            finished = True
            if report_addr is not None and st.rax != report_addr:
                problems.append(f"RAX at hlt is {st.rax:#x}, the report symbol is at {report_addr:#x}")
            report_addr = st.rax
        else:
            problems.append(describe_exception(elf, elf_path, st, vector, error_code, args, kind))

    r = None
    if report_addr is not None:
        raw = read(report_addr, REPORT_SIZE)
        r = parse_report(raw) if raw else None
        if r is None:
            problems.append(f"report address {report_addr:#x} is not mapped")
        elif r["magic"] != b"ALBBOCH1" or r["size"] != REPORT_SIZE:
            problems.append(f"report at {report_addr:#x} is not one (magic {r['magic']!r}, size {r['size']}, "
                            f"expected {REPORT_SIZE}): harness and run.py out of step?")
            r = None
    else:
        problems.append(f"no report: no {REPORT_SYMBOL} symbol in the ELF and no clean end")

    print(f"emulated run: {seconds:.1f} s wall")

    if r:
        feats = [f for i, f in enumerate(FEATURE_BITS) if r["features"] >> i & 1]
        print(f"build target features: {', '.join(feats) or 'none'}")
        print("kernels available in the build: " + ", ".join(r["names"]))
        for i, name in enumerate(r["names"]):
            if name == "scalar":
                print(f"  {name:8} reference")
            else:
                print(f"  {name:8} {r['kernel_cases'][i]:6} cases, {r['kernel_mismatches'][i]} mismatching")
        state = {0: "did not finish", 1: "finished", 2: "PANICKED"}.get(r["state"], f"state {r['state']}")
        print(f"harness {state}: {r['cases']} cases, {r['mismatches']} mismatching")
        if r["mismatches"]:
            f = r["first"]
            where = (f"guard element {f['col']} past m*n" if f["row"] == f["m"]
                     else f"c[{f['row']}][{f['col']}]")
            problems.append(f"{r['mismatches']} mismatching cases; first: {describe_case(f, r['names'])}: "
                            f"{where} expected {f['expected']}, got {f['got']}")
        if r["state"] == 2:
            problems.append(f"harness panicked: {r['panic']}\n    during {describe_case(r['current'], r['names'])}")
        elif not finished:
            if r["state"] == 0 and r["kernel_count"]:
                problems.append(f"stopped during {describe_case(r['current'], r['names'])}")
        elif r["state"] != 1:
            problems.append(f"harness ended in state {r['state']}")
        for name in filter(None, args.expect.split(",")):
            if name not in r["names"]:
                problems.append(f"expected kernel `{name}` did not run (available: {', '.join(r['names'])})")
            elif r["kernel_cases"][r["names"].index(name)] == 0 and name != "scalar":
                problems.append(f"expected kernel `{name}` ran no cases")

    if problems:
        for p in problems:
            print("FAIL: " + p)
        sys.exit(1)
    print("PASS: every kernel matches scalar bit for bit")


if __name__ == "__main__":
    main()
