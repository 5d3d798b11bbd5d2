//! Hooks into the encoder for measurement (calibration, per-GEMM error reports). The
//! normal path passes [`NoObserver`], whose empty methods compile away.

/// One of the encoder's matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gemm {
    MappingIn,
    Query,
    Key,
    Value,
    Dense,
    Ffn,
    FfnOutput,
}

impl Gemm {
    /// Every encoder GEMM, in execution order.
    pub const ALL: [Gemm; 7] =
        [Gemm::MappingIn, Gemm::Query, Gemm::Key, Gemm::Value, Gemm::Dense, Gemm::Ffn, Gemm::FfnOutput];

    /// The checkpoint name of the linear, relative to its layer (or the encoder for
    /// `MappingIn`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Gemm::MappingIn => "embedding_hidden_mapping_in",
            Gemm::Query => "attention.query",
            Gemm::Key => "attention.key",
            Gemm::Value => "attention.value",
            Gemm::Dense => "attention.dense",
            Gemm::Ffn => "ffn",
            Gemm::FfnOutput => "ffn_output",
        }
    }
}

/// Where a GEMM ran: which product, which shared layer (`group × inner_group_num + inner`),
/// and in which of the `num_hidden_layers` iterations (0 for `MappingIn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    pub gemm: Gemm,
    pub layer: usize,
    pub iteration: u32,
}

/// Receives intermediate values of [`crate::Model::encode_observed`].
pub trait Observer {
    /// Whether the observer looks at anything; `false` lets the encoder fuse steps whose
    /// intermediate values it would otherwise have to show (the FFN output before its
    /// activation).
    const OBSERVES: bool = true;
    /// After a GEMM (bias added, before any residual): input `x` is `m × k`, output `y` is
    /// `m × n`, both row-major.
    fn gemm(&mut self, _site: Site, _x: &[f32], _y: &[f32], _m: usize) {}
    /// After each layer application: the hidden states (`tokens × hidden_size`).
    fn layer(&mut self, _iteration: u32, _layer: usize, _hidden: &[f32]) {}
}

/// The observer that observes nothing.
pub struct NoObserver;

impl Observer for NoObserver {
    const OBSERVES: bool = false;
}
