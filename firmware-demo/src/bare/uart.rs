//! PL011 UART, transmit only, polled.

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const FR: usize = 0x18;
const IBRD: usize = 0x24;
const FBRD: usize = 0x28;
const LCRH: usize = 0x2c;
const CR: usize = 0x30;
const ICR: usize = 0x44;
const FR_BUSY: u32 = 1 << 3;
const FR_TXFF: u32 = 1 << 5;

pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` is a PL011's register block, mapped as device memory, used by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Pl011 { base }
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: a register of the PL011 `new` was given, mapped as device memory.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&mut self, reg: usize, v: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + reg) as *mut u32, v) }
    }

    /// 115200 baud 8N1 from a 48 MHz reference clock (the Pi firmware's default with
    /// `init_uart_clock=48000000`; QEMU ignores the divisors), FIFOs on, transmit and receive.
    pub fn init(&mut self) {
        self.write(CR, 0);
        while self.read(FR) & FR_BUSY != 0 {}
        self.write(ICR, 0x7ff);
        self.write(IBRD, 26);
        self.write(FBRD, 3);
        self.write(LCRH, (3 << 5) | (1 << 4));
        self.write(CR, (1 << 0) | (1 << 8) | (1 << 9));
    }

    pub fn put(&mut self, b: u8) {
        while self.read(FR) & FR_TXFF != 0 {}
        self.write(DR, b as u32);
    }
}

impl fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}
