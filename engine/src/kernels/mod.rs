//! Matrix kernels. `scalar` is the reference every faster kernel is checked against
//! (bit-identical int32 results); the SIMD kernels arrive with their own issue.

pub mod scalar;
