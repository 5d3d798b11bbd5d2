//! The model configuration stored in the blob header (see `FORMAT.md`, "Model config").

use crate::error::Error;

/// Number of u32 words the config occupies in the header.
pub const CONFIG_WORDS: usize = 48;

/// Largest size any single dimension may have; keeps every product of two dims far from
/// overflowing `usize` on 32-bit targets and rejects absurd configs from corrupted headers.
const MAX_DIM: u32 = 1 << 20;

/// Most distinct shared layers (`num_hidden_groups × inner_group_num`) a model may have.
/// Every published ALBERT has one; the cap keeps `Model` a fixed-size value without a heap.
pub const MAX_LAYERS: usize = 16;

/// The activation function `hidden_act` names, as transformers' `ACT2FN` defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU with `erf`.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`); ALBERT's default.
    GeluNew,
    Relu,
    GeluFast,
    QuickGelu,
    Silu,
    Tanh,
    Sigmoid,
    Linear,
}

impl Activation {
    /// The code stored in the blob.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Parses a stored code.
    pub fn from_code(code: u32) -> Option<Self> {
        use Activation::*;
        Some(match code {
            0 => Gelu,
            1 => GeluNew,
            2 => Relu,
            3 => GeluFast,
            4 => QuickGelu,
            5 => Silu,
            6 => Tanh,
            7 => Sigmoid,
            8 => Linear,
            _ => return None,
        })
    }

    /// Maps a `hidden_act` string from `config.json`.
    ///
    /// ```
    /// use albert_engine::Activation;
    /// assert_eq!(Activation::from_hf_name("gelu_new"), Some(Activation::GeluNew));
    /// assert_eq!(Activation::from_hf_name("nope"), None);
    /// ```
    pub fn from_hf_name(name: &str) -> Option<Self> {
        use Activation::*;
        Some(match name {
            "gelu" => Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => GeluNew,
            "relu" => Relu,
            "gelu_fast" => GeluFast,
            "quick_gelu" => QuickGelu,
            "silu" | "swish" => Silu,
            "tanh" => Tanh,
            "sigmoid" => Sigmoid,
            "linear" => Linear,
            _ => return None,
        })
    }
}

/// Which heads a blob carries (a bit set, word 13 of the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Heads(pub u32);

impl Heads {
    pub const POOLER: u32 = 1 << 0;
    pub const MLM: u32 = 1 << 1;
    pub const SOP: u32 = 1 << 2;
    pub const SEQ_CLS: u32 = 1 << 3;
    pub const TOKEN_CLS: u32 = 1 << 4;
    pub const QA: u32 = 1 << 5;
    pub const MULTIPLE_CHOICE: u32 = 1 << 6;
    const ALL: u32 = (1 << 7) - 1;

    /// Whether every bit of `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
}

/// Element types of stored tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32 = 0,
    F16 = 1,
    I8 = 2,
}

impl DType {
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I8),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "int8",
        }
    }
}

/// ALBERT's hyper-parameters, as `AlbertConfig` names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: u32,
    pub embedding_size: u32,
    pub hidden_size: u32,
    pub num_hidden_layers: u32,
    pub num_hidden_groups: u32,
    pub inner_group_num: u32,
    pub num_attention_heads: u32,
    pub intermediate_size: u32,
    pub max_position_embeddings: u32,
    pub type_vocab_size: u32,
    pub hidden_act: Activation,
    pub layer_norm_eps: f32,
    /// Rows of the classification head (1 for multiple choice; 0 without one).
    pub num_labels: u32,
    pub heads: Heads,
    /// Storage type of the matrix weights.
    pub weight_dtype: DType,
    pub pad_token_id: u32,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    /// 0: float weights; 1: int8 weights with dynamic per-token int8 activations, centred
    /// rows on their range's midpoint; 2: as 1, the centre moved onto the grid so that 0
    /// quantizes exactly (`FORMAT.md`, "Activations").
    pub activation_scheme: u32,
}

impl ModelConfig {
    /// Decodes and validates the config words of a header.
    pub fn from_words(w: &[u32; CONFIG_WORDS], base_offset: u64) -> Result<Self, Error> {
        let off = |i: usize| base_offset + 4 * i as u64;
        let hidden_act = Activation::from_code(w[10]).ok_or(Error::BadField {
            field: "hidden_act",
            offset: off(10),
            value: w[10] as u64,
            expected: "an activation code 0..=8",
        })?;
        let weight_dtype = DType::from_code(w[14]).ok_or(Error::BadField {
            field: "weight_dtype",
            offset: off(14),
            value: w[14] as u64,
            expected: "0 (f32), 1 (f16) or 2 (int8)",
        })?;
        if let Some(i) = (19..CONFIG_WORDS).find(|&i| w[i] != 0) {
            return Err(Error::BadField {
                field: "reserved config word",
                offset: off(i),
                value: w[i] as u64,
                expected: "0",
            });
        }
        let cfg = ModelConfig {
            vocab_size: w[0],
            embedding_size: w[1],
            hidden_size: w[2],
            num_hidden_layers: w[3],
            num_hidden_groups: w[4],
            inner_group_num: w[5],
            num_attention_heads: w[6],
            intermediate_size: w[7],
            max_position_embeddings: w[8],
            type_vocab_size: w[9],
            hidden_act,
            layer_norm_eps: f32::from_bits(w[11]),
            num_labels: w[12],
            heads: Heads(w[13]),
            weight_dtype,
            pad_token_id: w[15],
            bos_token_id: w[16],
            eos_token_id: w[17],
            activation_scheme: w[18],
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Encodes the config as header words (the inverse of [`ModelConfig::from_words`]).
    pub fn to_words(&self) -> [u32; CONFIG_WORDS] {
        let mut w = [0u32; CONFIG_WORDS];
        w[0] = self.vocab_size;
        w[1] = self.embedding_size;
        w[2] = self.hidden_size;
        w[3] = self.num_hidden_layers;
        w[4] = self.num_hidden_groups;
        w[5] = self.inner_group_num;
        w[6] = self.num_attention_heads;
        w[7] = self.intermediate_size;
        w[8] = self.max_position_embeddings;
        w[9] = self.type_vocab_size;
        w[10] = self.hidden_act.code();
        w[11] = self.layer_norm_eps.to_bits();
        w[12] = self.num_labels;
        w[13] = self.heads.0;
        w[14] = self.weight_dtype as u32;
        w[15] = self.pad_token_id;
        w[16] = self.bos_token_id;
        w[17] = self.eos_token_id;
        w[18] = self.activation_scheme;
        w
    }

    /// Checks that the configuration is internally consistent and within the engine's limits.
    pub fn validate(&self) -> Result<(), Error> {
        let dims: [(&'static str, u32); 10] = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_hidden_groups", self.num_hidden_groups),
            ("inner_group_num", self.inner_group_num),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (field, v) in dims {
            if v == 0 || v > MAX_DIM {
                return Err(Error::BadConfig { field, value: v as u64, detail: "must be between 1 and 2^20" });
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::BadConfig {
                field: "num_attention_heads",
                value: self.num_attention_heads as u64,
                detail: "must divide hidden_size",
            });
        }
        if (self.num_hidden_groups as usize) * (self.inner_group_num as usize) > MAX_LAYERS {
            return Err(Error::BadConfig {
                field: "num_hidden_groups",
                value: self.num_hidden_groups as u64 * self.inner_group_num as u64,
                detail: "num_hidden_groups × inner_group_num is above the engine's limit of 16 distinct layers",
            });
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(Error::BadConfig {
                field: "layer_norm_eps",
                value: self.layer_norm_eps.to_bits() as u64,
                detail: "must be a finite non-negative f32",
            });
        }
        if self.heads.0 & !Heads::ALL != 0 {
            return Err(Error::BadConfig {
                field: "heads",
                value: self.heads.0 as u64,
                detail: "unknown head bits set",
            });
        }
        let cls =
            [Heads::SEQ_CLS, Heads::TOKEN_CLS, Heads::MULTIPLE_CHOICE].iter().filter(|&&b| self.heads.has(b)).count();
        if cls > 1 {
            return Err(Error::BadConfig {
                field: "heads",
                value: self.heads.0 as u64,
                detail: "at most one of sequence, token classification and multiple choice",
            });
        }
        if cls == 1 && (self.num_labels == 0 || self.num_labels > MAX_DIM) {
            return Err(Error::BadConfig {
                field: "num_labels",
                value: self.num_labels as u64,
                detail: "a classification head needs between 1 and 2^20 labels",
            });
        }
        if cls == 0 && self.num_labels != 0 {
            return Err(Error::BadConfig {
                field: "num_labels",
                value: self.num_labels as u64,
                detail: "must be 0 without a classification head",
            });
        }
        if self.heads.has(Heads::MULTIPLE_CHOICE) && self.num_labels != 1 {
            return Err(Error::BadConfig {
                field: "num_labels",
                value: self.num_labels as u64,
                detail: "the multiple-choice head has exactly one output row",
            });
        }
        if (self.heads.has(Heads::SEQ_CLS) || self.heads.has(Heads::MULTIPLE_CHOICE) || self.heads.has(Heads::SOP))
            && !self.heads.has(Heads::POOLER)
        {
            return Err(Error::BadConfig {
                field: "heads",
                value: self.heads.0 as u64,
                detail: "sentence-order, sequence-classification and multiple-choice heads need the pooler",
            });
        }
        for (field, id) in [
            ("pad_token_id", self.pad_token_id),
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if id >= self.vocab_size {
                return Err(Error::BadConfig { field, value: id as u64, detail: "must be below vocab_size" });
            }
        }
        let int8 = self.weight_dtype == DType::I8;
        let scheme_ok = if int8 { matches!(self.activation_scheme, 1 | 2) } else { self.activation_scheme == 0 };
        if !scheme_ok {
            return Err(Error::BadConfig {
                field: "activation_scheme",
                value: self.activation_scheme as u64,
                detail: "must be 1 or 2 with int8 weights and 0 with float weights",
            });
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        (self.hidden_size / self.num_attention_heads) as usize
    }

    /// Which shared layer group iteration `i` of `num_hidden_layers` runs, exactly as
    /// transformers' `AlbertTransformer.forward` computes it:
    /// `int(i / (num_hidden_layers / num_hidden_groups))` in floating point.
    ///
    /// ```
    /// # use albert_engine::ModelConfig;
    /// // 5 iterations over 2 groups: 0, 0, 0, 1, 1
    /// let g: Vec<usize> = (0..5).map(|i| ModelConfig::group_of_iteration(i, 5, 2)).collect();
    /// assert_eq!(g, [0, 0, 0, 1, 1]);
    /// ```
    pub fn group_of_iteration(i: u32, num_hidden_layers: u32, num_hidden_groups: u32) -> usize {
        let per = num_hidden_layers as f64 / num_hidden_groups as f64;
        let g = (i as f64 / per) as usize;
        g.min(num_hidden_groups as usize - 1)
    }
}
