//! albert-tools library
