//! Reset entry and exception vectors.
//!
//! `_start` (placed first in the image by the linker script) parks every core but core 0,
//! drops from EL3 or EL2 to EL1 if it starts there, enables FP/SIMD (Rust code uses the
//! vector registers), sets the stack, zeroes `.bss`, installs the vectors and calls
//! `kmain(boot_el)`. Nothing before `kmain` touches memory but the stack and `.bss`.

core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    cbnz    x0, 9f                  // secondary cores wait forever
    mrs     x19, CurrentEL
    ubfx    x19, x19, #2, #2        // x19 = boot exception level
    cmp     x19, #3
    b.eq    3f
    cmp     x19, #2
    b.eq    2f
    b       1f

3:  // EL3 -> EL1: lower levels AArch64 and non-secure, no FP traps
    mov     x0, #0x431              // SCR_EL3: RW | RES1(5:4) | NS
    msr     scr_el3, x0
    msr     cptr_el3, xzr
    mov     x0, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x0
    ldr     x0, =0x30d00800         // SCTLR_EL1: RES1 bits; MMU, caches off
    msr     sctlr_el1, x0
    mov     x0, #0x3c5              // EL1h, DAIF masked
    msr     spsr_el3, x0
    adr     x0, 1f
    msr     elr_el3, x0
    eret

2:  // EL2 -> EL1
    mov     x0, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #3              // EL1 may use the physical timer and counter
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr        // virtual count = physical count
    mov     x0, #0x33ff             // CPTR_EL2: no FP/SIMD traps
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, mdcr_el2
    bic     x0, x0, #(3 << 5)       // no PMU traps (TPM, TPMCR)
    msr     mdcr_el2, x0
    ldr     x0, =0x30d00800         // SCTLR_EL1: RES1 bits; MMU, caches off
    msr     sctlr_el1, x0
    mov     x0, #0x3c5              // EL1h, DAIF masked
    msr     spsr_el2, x0
    adr     x0, 1f
    msr     elr_el2, x0
    eret

1:  // EL1
    mov     x0, #(3 << 20)          // CPACR_EL1.FPEN: FP/SIMD at EL1 and EL0
    msr     cpacr_el1, x0
    isb
    ldr     x0, =__stack_top
    mov     sp, x0
    ldr     x0, =__bss_start
    ldr     x1, =__bss_end
4:  cmp     x0, x1
    b.hs    5f
    stp     xzr, xzr, [x0], #16
    b       4b
5:  ldr     x0, =__vectors
    msr     vbar_el1, x0
    isb
    mov     x0, x19
    bl      kmain
9:  wfe
    b       9b

.macro vector idx
    .balign 0x80
    mov     x0, #\idx
    b       6f
.endm

.section .text.vectors, "ax"
.balign 0x800
__vectors:
    .irp idx, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    vector \idx
    .endr
6:  mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      exception
    b       9b
"#
);
