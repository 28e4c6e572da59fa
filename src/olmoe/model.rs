//! The OLMoE decoder (Muennighoff et al., "OLMoE: Open Mixture-of-Experts Language Models", 2024)
//! on burn, with exactly the forward semantics of Hugging Face transformers 5.23's
//! `OlmoeForCausalLM`:
//!
//! - RMSNorm `w·x/√(mean(x²)+ε)` (burn's `RmsNorm`).
//! - Attention: `q = q_norm(q_proj x)`, `k = k_norm(k_proj x)`, `v = v_proj x` — the q/k norms
//!   span the whole projection width, not one head — then a clamp to `±clip_qkv` when set, the
//!   split into heads, NeoX rotary embedding (first half / second half), GQA (key/value head `j`
//!   serves query heads `j·r .. j·r+r−1`), scale `1/√d`, causal softmax with padded keys masked.
//! - Sparse MoE: `p = softmax(x W_gᵀ)` over all experts, top-k of `p`, optionally renormalized
//!   to sum 1, `out = Σ_k p_k · down(silu(gate x) · up x)`. Each expert computes only the rows
//!   routed to it (gathered by index, scattered back with an index-add).
//! - Layer: `h += attn(input_layernorm h)`; `h += moe(post_attention_layernorm h)`; then the
//!   final `norm` and an untied `lm_head` (or the embedding matrix when tied).
//!
//! burn's `RotaryEncoding` rotates interleaved pairs (GPT-J style), not NeoX halves, so the
//! rotation is written here; burn has no mixture-of-experts block.
//!
//! Module fields are named as the checkpoint keys (`layers.{i}.self_attn.q_proj`, …, see
//! `docs/olmoe.md`), so a parameter's record path is its Hugging Face key without `model.`.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, Tensor, TensorData, s};
use rand::Rng;

use super::config::OlmoeConfig;
use crate::error::{Error, Result};
use crate::nn::init;

/// How the experts of a MoE layer are executed. Both give the same result; `Dense` exists to
/// measure what sparsity saves and to cross-check `Sparse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpertExecution {
    /// Each expert computes only the tokens routed to it (the default).
    #[default]
    Sparse,
    /// Every expert computes every token; unrouted outputs are weighted by zero.
    Dense,
}

/// A batch of token id sequences, right-padded to one length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    input_ids: Vec<u32>,
    lengths: Vec<usize>,
    seq_len: usize,
}

impl TokenBatch {
    /// Right-pads `sequences` with `pad_id` to the longest one.
    ///
    /// # Errors
    /// [`Error::Invalid`] when there are no sequences or one of them is empty (a mean over zero
    /// tokens does not exist).
    pub fn right_padded<S: AsRef<[u32]>>(sequences: &[S], pad_id: u32) -> Result<Self> {
        if sequences.is_empty() {
            return Err(Error::invalid("sequences", "the batch is empty"));
        }
        if let Some(row) = sequences.iter().position(|s| s.as_ref().is_empty()) {
            return Err(Error::invalid(
                "sequences",
                format!("sequence {row} has no tokens"),
            ));
        }
        let seq_len = sequences
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0);
        let mut input_ids = Vec::with_capacity(sequences.len() * seq_len);
        let mut lengths = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            let sequence = sequence.as_ref();
            input_ids.extend_from_slice(sequence);
            input_ids.extend(std::iter::repeat_n(pad_id, seq_len - sequence.len()));
            lengths.push(sequence.len());
        }
        Ok(Self {
            input_ids,
            lengths,
            seq_len,
        })
    }

    /// A batch already padded on the right, with its attention mask (1 = real token).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when rows differ in length or the mask does not match the ids;
    /// [`Error::Invalid`] naming the row whose mask is not ones followed by zeros, or is all zero.
    pub fn from_padded(input_ids: &[Vec<u32>], attention_mask: &[Vec<u32>]) -> Result<Self> {
        let seq_len = input_ids.first().map_or(0, Vec::len);
        let batch = input_ids.len();
        if batch == 0 || seq_len == 0 {
            return Err(Error::invalid("input_ids", "the batch is empty"));
        }
        let mut lengths = Vec::with_capacity(batch);
        for (row, (ids, mask)) in input_ids.iter().zip(attention_mask).enumerate() {
            if ids.len() != seq_len || mask.len() != seq_len {
                return Err(Error::ShapeMismatch {
                    name: format!("input_ids / attention_mask row {row}"),
                    expected: vec![seq_len],
                    found: vec![ids.len(), mask.len()],
                });
            }
            let length = mask.iter().take_while(|&&m| m == 1).count();
            if length == 0 || mask[length..].iter().any(|&m| m != 0) {
                return Err(Error::invalid(
                    "attention_mask",
                    format!("row {row} is not right-padded ones then zeros with at least one 1"),
                ));
            }
            lengths.push(length);
        }
        if attention_mask.len() != batch {
            return Err(Error::ShapeMismatch {
                name: "attention_mask".into(),
                expected: vec![batch, seq_len],
                found: vec![attention_mask.len(), seq_len],
            });
        }
        Ok(Self {
            input_ids: input_ids.concat(),
            lengths,
            seq_len,
        })
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Number of real tokens per sequence.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The padded ids, row-major `[batch, seq_len]`.
    pub fn input_ids(&self) -> &[u32] {
        &self.input_ids
    }

    /// The attention mask as floats, `[batch, seq_len]`, 1.0 at real tokens.
    ///
    /// # Shapes
    /// - output: `[batch, seq_len]`
    pub fn mask_tensor(&self, device: &Device) -> Tensor<2> {
        let values = self
            .lengths
            .iter()
            .flat_map(|&n| (0..self.seq_len).map(move |t| if t < n { 1.0f32 } else { 0.0 }))
            .collect::<Vec<_>>();
        Tensor::from_data(
            TensorData::new(values, [self.batch_size(), self.seq_len]),
            device,
        )
    }
}

/// What a forward pass returns besides the last hidden state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Keep the embeddings and every layer's output (`hidden_states`).
    pub hidden_states: bool,
    /// Keep every layer's router logits.
    pub router_logits: bool,
    /// Compute the vocabulary logits.
    pub logits: bool,
    /// How the experts run.
    pub expert_execution: ExpertExecution,
}

/// The result of [`OlmoeModel::forward`].
#[derive(Debug, Clone)]
pub struct OlmoeOutput {
    /// The last hidden state after the final norm, `[batch, seq_len, hidden]`.
    pub last_hidden: Tensor<3>,
    /// The last layer's output before the final norm, `[batch, seq_len, hidden]`.
    pub pre_norm_last: Tensor<3>,
    /// With [`ForwardOptions::hidden_states`]: `num_hidden_layers + 1` tensors
    /// `[batch, seq_len, hidden]` — the embeddings, the outputs of layers `0..n−1`, and last the
    /// normed final state (as transformers 5 returns them). Empty otherwise.
    pub hidden_states: Vec<Tensor<3>>,
    /// With [`ForwardOptions::router_logits`]: per layer `[batch, seq_len, num_experts]`
    /// (before the softmax). Empty otherwise.
    pub router_logits: Vec<Tensor<3>>,
    /// With [`ForwardOptions::logits`]: `[batch, seq_len, vocab_size]`.
    pub logits: Option<Tensor<3>>,
}

/// Per-forward constants shared by every layer: rotary tables, attention mask, real rows.
#[derive(Debug, Clone)]
pub struct SequenceContext {
    /// `cos` of the NeoX rotary angles, `[1, 1, seq_len, head_dim]`.
    cos: Tensor<4>,
    /// `sin` of the NeoX rotary angles, `[1, 1, seq_len, head_dim]`.
    sin: Tensor<4>,
    /// True where attention is forbidden (a future key or a padded key),
    /// `[batch, 1, seq_len, seq_len]`.
    masked: Tensor<4, Bool>,
    /// Whether each flattened row is a real token (padded rows skip the experts).
    active_rows: Vec<bool>,
    batch_size: usize,
    seq_len: usize,
}

impl SequenceContext {
    /// The rotary tables and masks for `lengths` real tokens in rows padded to `seq_len`.
    pub fn new(config: &OlmoeConfig, lengths: &[usize], seq_len: usize, device: &Device) -> Self {
        let (cos, sin) = rotary_tables(config.rope_theta, config.head_dim, seq_len);
        let table = |values| {
            Tensor::<2>::from_data(TensorData::new(values, [seq_len, config.head_dim]), device)
                .reshape([1, 1, seq_len, config.head_dim])
        };
        let mut masked = Vec::with_capacity(lengths.len() * seq_len * seq_len);
        for &length in lengths {
            for query in 0..seq_len {
                masked.extend((0..seq_len).map(|key| key > query || key >= length));
            }
        }
        let batch_size = lengths.len();
        Self {
            cos: table(cos),
            sin: table(sin),
            masked: Tensor::from_data(
                TensorData::new(masked, [batch_size, 1, seq_len, seq_len]),
                device,
            ),
            active_rows: lengths
                .iter()
                .flat_map(|&n| (0..seq_len).map(move |t| t < n))
                .collect(),
            batch_size,
            seq_len,
        }
    }
}

/// The NeoX rotary tables `[seq_len, head_dim]`, computed as transformers does in float32:
/// `inv_freq_i = 1/θ^(2i/d)`, angle `= position · inv_freq`, and `cat(angles, angles)`.
fn rotary_tables(theta: f64, head_dim: usize, seq_len: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(seq_len * head_dim);
    let mut sin = Vec::with_capacity(seq_len * head_dim);
    for position in 0..seq_len {
        let angles: Vec<f32> = inv_freq.iter().map(|&f| position as f32 * f).collect();
        for _ in 0..2 {
            cos.extend(angles.iter().map(|&a| f64::from(a).cos() as f32));
            sin.extend(angles.iter().map(|&a| f64::from(a).sin() as f32));
        }
    }
    (cos, sin)
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half(x) = cat(−x₂, x₁)` over the last axis.
fn apply_rotary(x: Tensor<4>, context: &SequenceContext) -> Tensor<4> {
    let [_, _, _, head_dim] = x.dims();
    let half = head_dim / 2;
    let first = x.clone().slice(s![.., .., .., 0..half]);
    let second = x.clone().slice(s![.., .., .., half..head_dim]);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * context.cos.clone() + rotated * context.sin.clone()
}

/// Self-attention with full-width q/k norms, optional clipping, NeoX RoPE and GQA.
#[derive(Module, Debug)]
pub struct OlmoeAttention {
    /// `self_attn.q_proj`: H → heads·d.
    pub q_proj: Linear,
    /// `self_attn.k_proj`: H → kv_heads·d.
    pub k_proj: Linear,
    /// `self_attn.v_proj`: H → kv_heads·d.
    pub v_proj: Linear,
    /// `self_attn.o_proj`: heads·d → H.
    pub o_proj: Linear,
    /// `self_attn.q_norm`, over the whole query width heads·d.
    pub q_norm: RmsNorm,
    /// `self_attn.k_norm`, over the whole key width kv_heads·d.
    pub k_norm: RmsNorm,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// The clamp of q, k and v, if any.
    pub clip_qkv: Option<f64>,
}

impl OlmoeAttention {
    /// Causal self-attention over right-padded rows.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq_len, hidden]`
    /// - output: `[batch, seq_len, hidden]`
    pub fn forward(&self, hidden: Tensor<3>, context: &SequenceContext) -> Tensor<3> {
        let [batch, seq_len, _] = hidden.dims();
        let (heads, kv_heads, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let mut queries = self.q_norm.forward(self.q_proj.forward(hidden.clone()));
        let mut keys = self.k_norm.forward(self.k_proj.forward(hidden.clone()));
        let mut values = self.v_proj.forward(hidden);
        if let Some(clip) = self.clip_qkv {
            queries = queries.clamp(-clip, clip);
            keys = keys.clamp(-clip, clip);
            values = values.clamp(-clip, clip);
        }
        let split = |x: Tensor<3>, n: usize| x.reshape([batch, seq_len, n, d]).swap_dims(1, 2);
        let queries = apply_rotary(split(queries, heads), context);
        let keys = apply_rotary(split(keys, kv_heads), context);
        let values = split(values, kv_heads);
        // GQA: repeat each key/value head for the query heads it serves.
        let repeat = |x: Tensor<4>| -> Tensor<4> {
            let group = heads / kv_heads;
            if group == 1 {
                return x;
            }
            x.unsqueeze_dim::<5>(2)
                .repeat_dim(2, group)
                .reshape([batch, heads, seq_len, d])
        };
        let keys = repeat(keys);
        let values = repeat(values);
        let scores = queries.matmul(keys.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
        let masked = context
            .masked
            .clone()
            .expand([batch, heads, seq_len, seq_len]);
        // A finite fill: every query row keeps at least one key (itself or an earlier real
        // token), so masked weights are exactly 0 and no NaN can appear.
        let weights = softmax(scores.mask_fill(masked, f32::MIN), 3);
        let attended = weights
            .matmul(values)
            .swap_dims(1, 2)
            .reshape([batch, seq_len, heads * d]);
        self.o_proj.forward(attended)
    }
}

/// A bias-free projection kept in PyTorch's `[d_output, d_input]` layout (the checkpoint's own).
///
/// Experts see few rows each (about `tokens · k / E`), and for such thin inputs flex's matmul
/// runs `W · xᵀ` (the weight as the tall left operand) about twice as fast as burn's `Linear`
/// layout `x · W` (`benches/olmoe.rs`, probe noted in `docs/olmoe.md`), so expert weights are not
/// transposed into `Linear`s.
#[derive(Module, Debug)]
pub struct ExpertProjection {
    /// `[d_output, d_input]`.
    pub weight: Param<Tensor<2>>,
}

impl ExpertProjection {
    /// A projection from a PyTorch-layout weight.
    pub fn from_torch(weight: Vec<f32>, d_output: usize, d_input: usize, device: &Device) -> Self {
        Self {
            weight: init::param(weight, [d_output, d_input], device),
        }
    }

    /// `W · x` for feature-major `x`.
    ///
    /// # Shapes
    /// - `features`: `[d_input, rows]`
    /// - output: `[d_output, rows]`
    pub fn forward_features(&self, features: Tensor<2>) -> Tensor<2> {
        self.weight.val().matmul(features)
    }
}

/// One expert: `down(silu(gate x) · up x)`.
#[derive(Module, Debug)]
pub struct OlmoeExpert {
    /// `gate_proj`: H → I, `[I, H]`.
    pub gate_proj: ExpertProjection,
    /// `up_proj`: H → I, `[I, H]`.
    pub up_proj: ExpertProjection,
    /// `down_proj`: I → H, `[H, I]`.
    pub down_proj: ExpertProjection,
}

impl OlmoeExpert {
    /// The expert's feed-forward map, computed feature-major (see [`ExpertProjection`]).
    ///
    /// # Shapes
    /// - `x`: `[rows, hidden]`
    /// - output: `[rows, hidden]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let features = x.transpose();
        let gated = silu(self.gate_proj.forward_features(features.clone()))
            * self.up_proj.forward_features(features);
        self.down_proj.forward_features(gated).transpose()
    }
}

/// The mixture-of-experts block: softmax router, top-k, optional renormalization, experts.
#[derive(Module, Debug)]
pub struct OlmoeSparseMoe {
    /// `mlp.gate`: the router, H → E.
    pub gate: Linear,
    /// `mlp.experts.{e}`.
    pub experts: Vec<OlmoeExpert>,
    /// Experts per token.
    pub top_k: usize,
    /// Whether the top-k probabilities are divided by their sum.
    pub norm_topk_prob: bool,
}

impl OlmoeSparseMoe {
    /// Routes each active row to its top-k experts and mixes their outputs. Inactive (padded)
    /// rows get a zero output and cost nothing.
    ///
    /// The routing decision (which experts) is made on the host from the router probabilities;
    /// the routing weights stay on the device, so gradients reach the router.
    ///
    /// # Shapes
    /// - `x`: `[rows, hidden]`
    /// - output: `[rows, hidden]` and the router logits `[rows, num_experts]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `active_rows` does not have one entry per row;
    /// [`Error::NonFinite`] naming `layer` and the row when a router probability is not finite.
    pub fn forward(
        &self,
        x: Tensor<2>,
        active_rows: &[bool],
        execution: ExpertExecution,
        layer: usize,
    ) -> Result<(Tensor<2>, Tensor<2>)> {
        let device = x.device();
        let [num_rows, d_hidden] = x.dims();
        let num_experts = self.experts.len();
        if active_rows.len() != num_rows {
            return Err(Error::ShapeMismatch {
                name: format!("active rows of layer {layer}"),
                expected: vec![num_rows],
                found: vec![active_rows.len()],
            });
        }
        let router_logits = self.gate.forward(x.clone());
        let probs = softmax(router_logits.clone(), 1);
        let host = probs
            .clone()
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::invalid(format!("router of layer {layer}"), format!("{e:?}")))?;
        let mut selection = vec![0.0f32; num_rows * num_experts];
        let mut rows_of_expert = vec![Vec::<i64>::new(); num_experts];
        for (row, _) in active_rows.iter().enumerate().filter(|(_, a)| **a) {
            let row_probs = &host[row * num_experts..(row + 1) * num_experts];
            if row_probs.iter().any(|p| !p.is_finite()) {
                return Err(Error::NonFinite {
                    name: format!("router probabilities of layer {layer}"),
                    row,
                });
            }
            for expert in top_k(row_probs, self.top_k) {
                selection[row * num_experts + expert] = 1.0;
                rows_of_expert[expert].push(row as i64);
            }
        }
        let selection =
            Tensor::<2>::from_data(TensorData::new(selection, [num_rows, num_experts]), &device);
        let mut weights = probs * selection;
        if self.norm_topk_prob {
            // Padded rows select nothing and sum to 0; the floor keeps their 0/0 (and its
            // gradient) out of the graph without changing any real row (sum ≥ k/E).
            let sums = weights.clone().sum_dim(1).clamp_min(f32::MIN_POSITIVE);
            weights = weights / sums;
        }
        let out = match execution {
            ExpertExecution::Dense => {
                let mut out = Tensor::<2>::zeros([num_rows, d_hidden], &device);
                for (e, expert) in self.experts.iter().enumerate() {
                    let weight = weights.clone().slice(s![.., e..e + 1]);
                    out = out + expert.forward(x.clone()) * weight;
                }
                out
            }
            ExpertExecution::Sparse => {
                let mut outputs = Vec::new();
                let mut destinations = Vec::new();
                for (e, rows) in rows_of_expert.into_iter().enumerate() {
                    if rows.is_empty() {
                        continue;
                    }
                    let count = rows.len();
                    let index = Tensor::<1, Int>::from_data(
                        TensorData::new(rows.clone(), [count]),
                        &device,
                    );
                    let routed = x.clone().select(0, index.clone());
                    let weight = weights.clone().slice(s![.., e..e + 1]).select(0, index);
                    outputs.push(self.experts[e].forward(routed) * weight);
                    destinations.extend(rows);
                }
                let out = Tensor::<2>::zeros([num_rows, d_hidden], &device);
                if outputs.is_empty() {
                    out
                } else {
                    let count = destinations.len();
                    let index = Tensor::<1, Int>::from_data(
                        TensorData::new(destinations, [count]),
                        &device,
                    );
                    out.select_assign(0, index, Tensor::cat(outputs, 0), IndexingUpdateOp::Add)
                }
            }
        };
        Ok((out, router_logits))
    }
}

/// The `k` largest entries of `probs`, largest first (ties: lower index first).
fn top_k(probs: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// One decoder layer: pre-norm attention and pre-norm MoE, each added to the residual stream.
#[derive(Module, Debug)]
pub struct OlmoeDecoderLayer {
    /// `self_attn`.
    pub self_attn: OlmoeAttention,
    /// `mlp`.
    pub mlp: OlmoeSparseMoe,
    /// `input_layernorm`, before attention.
    pub input_layernorm: RmsNorm,
    /// `post_attention_layernorm`, before the MoE.
    pub post_attention_layernorm: RmsNorm,
}

impl OlmoeDecoderLayer {
    /// `h += attn(input_layernorm h)`; `h += moe(post_attention_layernorm h)`.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq_len, hidden]`
    /// - output: `[batch, seq_len, hidden]` and the router logits `[batch·seq_len, num_experts]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `context` was built for another batch size or length; as
    /// [`OlmoeSparseMoe::forward`].
    pub fn forward(
        &self,
        hidden: Tensor<3>,
        context: &SequenceContext,
        execution: ExpertExecution,
        layer: usize,
    ) -> Result<(Tensor<3>, Tensor<2>)> {
        let [batch, seq_len, d_hidden] = hidden.dims();
        if [batch, seq_len] != [context.batch_size, context.seq_len] {
            return Err(Error::ShapeMismatch {
                name: format!("hidden state of layer {layer} (batch, seq_len)"),
                expected: vec![context.batch_size, context.seq_len],
                found: vec![batch, seq_len],
            });
        }
        let hidden = hidden.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(hidden), context);
        let normed = self
            .post_attention_layernorm
            .forward(hidden.clone())
            .reshape([batch * seq_len, d_hidden]);
        let (moe, router_logits) =
            self.mlp
                .forward(normed, &context.active_rows, execution, layer)?;
        Ok((
            hidden + moe.reshape([batch, seq_len, d_hidden]),
            router_logits,
        ))
    }

    /// A layer with random weights `N(0, std²)` (norm weights 1), for benchmarks and tests.
    pub fn random<R: Rng + ?Sized>(
        config: &OlmoeConfig,
        std: f32,
        rng: &mut R,
        device: &Device,
    ) -> Self {
        let h = config.hidden_size;
        let mut linear = |d_output: usize, d_input: usize| {
            linear_from_torch(
                init::normal(d_output * d_input, 0.0, std, rng),
                d_output,
                d_input,
                device,
            )
        };
        let self_attn = OlmoeAttention {
            q_proj: linear(config.d_query(), h),
            k_proj: linear(config.d_key_value(), h),
            v_proj: linear(config.d_key_value(), h),
            o_proj: linear(h, config.d_query()),
            q_norm: rms_norm(vec![1.0; config.d_query()], config.rms_norm_eps, device),
            k_norm: rms_norm(vec![1.0; config.d_key_value()], config.rms_norm_eps, device),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            clip_qkv: config.clip_qkv,
        };
        let gate = linear(config.num_experts, h);
        let i = config.intermediate_size;
        let experts = (0..config.num_experts)
            .map(|_| OlmoeExpert {
                gate_proj: ExpertProjection::from_torch(
                    init::normal(i * h, 0.0, std, rng),
                    i,
                    h,
                    device,
                ),
                up_proj: ExpertProjection::from_torch(
                    init::normal(i * h, 0.0, std, rng),
                    i,
                    h,
                    device,
                ),
                down_proj: ExpertProjection::from_torch(
                    init::normal(h * i, 0.0, std, rng),
                    h,
                    i,
                    device,
                ),
            })
            .collect();
        Self {
            self_attn,
            mlp: OlmoeSparseMoe {
                gate,
                experts,
                top_k: config.num_experts_per_tok,
                norm_topk_prob: config.norm_topk_prob,
            },
            input_layernorm: rms_norm(vec![1.0; h], config.rms_norm_eps, device),
            post_attention_layernorm: rms_norm(vec![1.0; h], config.rms_norm_eps, device),
        }
    }
}

/// The OLMoE decoder with its embedding, final norm and language-model head.
#[derive(Module, Debug)]
pub struct OlmoeModel {
    /// `model.embed_tokens`, `[vocab, H]`.
    pub embed_tokens: Embedding,
    /// `model.layers.{i}`.
    pub layers: Vec<OlmoeDecoderLayer>,
    /// `model.norm`, the final RMSNorm.
    pub norm: RmsNorm,
    /// `lm_head`; `None` when the checkpoint ties it to `embed_tokens`.
    pub lm_head: Option<Linear>,
    /// The architecture.
    #[module(skip)]
    pub config: OlmoeConfig,
}

impl OlmoeModel {
    /// A model with random weights `N(0, std²)` (norm weights 1), for tests and benchmarks.
    pub fn random<R: Rng + ?Sized>(
        config: &OlmoeConfig,
        std: f32,
        rng: &mut R,
        device: &Device,
    ) -> Self {
        let (v, h) = (config.vocab_size, config.hidden_size);
        let embed_tokens = Embedding {
            weight: init::param(init::normal(v * h, 0.0, std, rng), [v, h], device),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| OlmoeDecoderLayer::random(config, std, rng, device))
            .collect();
        let lm_head = (!config.tie_word_embeddings)
            .then(|| linear_from_torch(init::normal(v * h, 0.0, std, rng), v, h, device));
        Self {
            embed_tokens,
            layers,
            norm: rms_norm(vec![1.0; h], config.rms_norm_eps, device),
            lm_head,
            config: config.clone(),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.device()
    }

    /// Runs the decoder over a right-padded batch.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq_len]` ids with their real lengths
    /// - output: see [`OlmoeOutput`]
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the row and id when a token id is outside the vocabulary;
    /// as [`OlmoeSparseMoe::forward`].
    pub fn forward(&self, tokens: &TokenBatch, options: ForwardOptions) -> Result<OlmoeOutput> {
        let device = self.device();
        let (batch, seq_len) = (tokens.batch_size(), tokens.seq_len());
        let vocab = self.config.vocab_size;
        if let Some(position) = tokens
            .input_ids()
            .iter()
            .position(|&id| id as usize >= vocab)
        {
            return Err(Error::invalid(
                "token ids",
                format!(
                    "id {} in row {} is outside the vocabulary (vocab_size {vocab})",
                    tokens.input_ids()[position],
                    position / seq_len
                ),
            ));
        }
        let ids: Vec<i64> = tokens.input_ids().iter().map(|&id| i64::from(id)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq_len]), &device);
        let context = SequenceContext::new(&self.config, tokens.lengths(), seq_len, &device);
        let mut hidden = self.embed_tokens.forward(ids);
        let mut hidden_states = Vec::new();
        let mut router_logits = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if options.hidden_states {
                hidden_states.push(hidden.clone());
            }
            let (next, logits) = layer.forward(hidden, &context, options.expert_execution, i)?;
            hidden = next;
            if options.router_logits {
                router_logits.push(logits.reshape([batch, seq_len, self.config.num_experts]));
            }
        }
        let pre_norm_last = hidden.clone();
        let last_hidden = self.norm.forward(hidden);
        if options.hidden_states {
            hidden_states.push(last_hidden.clone());
        }
        let logits = options.logits.then(|| self.logits(last_hidden.clone()));
        Ok(OlmoeOutput {
            last_hidden,
            pre_norm_last,
            hidden_states,
            router_logits,
            logits,
        })
    }

    /// Vocabulary logits of normed hidden states, through `lm_head` or the tied embedding.
    ///
    /// # Shapes
    /// - `last_hidden`: `[batch, seq_len, hidden]`
    /// - output: `[batch, seq_len, vocab_size]`
    pub fn logits(&self, last_hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(last_hidden),
            None => last_hidden.matmul(self.embed_tokens.weight.val().transpose().unsqueeze()),
        }
    }
}

/// An RMSNorm with weight `gamma`.
pub(crate) fn rms_norm(gamma: Vec<f32>, epsilon: f64, device: &Device) -> RmsNorm {
    let width = gamma.len();
    RmsNorm {
        gamma: init::param(gamma, [width], device),
        epsilon,
    }
}

/// A bias-free `Linear` from a PyTorch-layout weight `[d_output, d_input]` (transposed to
/// burn's `[d_input, d_output]`).
pub(crate) fn linear_from_torch(
    weight: Vec<f32>,
    d_output: usize,
    d_input: usize,
    device: &Device,
) -> Linear {
    Linear {
        weight: init::param(
            transpose(&weight, d_output, d_input),
            [d_input, d_output],
            device,
        ),
        bias: None,
    }
}

/// Transposes a row-major `[rows, cols]` matrix, in cache-sized blocks.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    let mut out = vec![0.0; values.len()];
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_entry() {
        let values: Vec<f32> = (0..35 * 33).map(|v| v as f32).collect();
        let t = transpose(&values, 35, 33);
        for r in 0..35 {
            for c in 0..33 {
                assert_eq!(t[c * 35 + r], values[r * 33 + c]);
            }
        }
    }

    #[test]
    fn top_k_is_largest_first_with_ties_to_the_lower_index() {
        assert_eq!(top_k(&[0.1, 0.4, 0.2, 0.4], 3), vec![1, 3, 2]);
    }

    #[test]
    fn rotary_tables_follow_the_neox_layout() {
        let (cos, sin) = rotary_tables(10000.0, 4, 3);
        // Position 2, frequency index 1 (inv_freq 1/100) appears at columns 1 and 3.
        let angle = 2.0f64 * (1.0 / 100.0);
        assert!((cos[2 * 4 + 1] as f64 - angle.cos()).abs() < 1e-6);
        assert_eq!(cos[2 * 4 + 1], cos[2 * 4 + 3]);
        assert!((sin[2 * 4 + 2] as f64 - 2.0f64.sin()).abs() < 1e-6);
        assert_eq!(sin[0], 0.0);
    }

    #[test]
    fn padded_batches_must_be_right_padded() {
        let ok = TokenBatch::from_padded(
            &[vec![2, 5, 1], vec![2, 1, 1]],
            &[vec![1, 1, 0], vec![1, 0, 0]],
        )
        .unwrap();
        assert_eq!(ok.lengths(), &[2, 1]);
        let left = TokenBatch::from_padded(&[vec![1, 2]], &[vec![0, 1]]);
        assert!(matches!(left, Err(Error::Invalid { .. })));
        assert!(matches!(
            TokenBatch::right_padded(&[vec![2u32], vec![]], 1),
            Err(Error::Invalid { .. })
        ));
    }
}
