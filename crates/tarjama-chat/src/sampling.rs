//! Sampling settings, kept apart from model loading: the same loaded model serves greedy
//! translation and sampled summaries. Each engine applies them with its own sampler.

/// How the next token is chosen and when generation stops.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (deterministic); otherwise the softmax temperature.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p`.
    pub top_p: Option<f64>,
    /// Epsilon sampling (Hewitt et al. 2022): drop every token whose probability, at the
    /// sampling temperature, is below this (the most likely token always stays), as
    /// transformers' `epsilon_cutoff` does. Used for MBR candidates with about 0.02.
    pub epsilon: Option<f64>,
    /// Seed of the sampler's random generator.
    pub seed: u64,
    /// Divides the logits of recently seen tokens (1 = off), as llama.cpp's
    /// `repeat_penalty`.
    pub repetition_penalty: f32,
    /// How many recent tokens (prompt included) the penalty looks at.
    pub repeat_last_n: usize,
    /// The most tokens to generate.
    pub max_new_tokens: usize,
    /// Generation stops before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    /// Stop when the last this-many generated tokens repeat, token for token, a stretch
    /// generated earlier: the model is looping and would only say it again until
    /// `max_new_tokens`. 0 turns it off.
    pub stop_on_loop: usize,
    /// Stop once the text holds this many distinct complete sentences and has begun
    /// another (split as `tarjama_text::split` does): for a caller that keeps only that
    /// many, whatever comes after is decoded for nothing. 0 turns it off.
    pub stop_after_sentences: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            epsilon: None,
            seed: 299_792_458,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            max_new_tokens: 512,
            stop: Vec::new(),
            stop_on_loop: 0,
            stop_after_sentences: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of at most `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            max_new_tokens,
            ..Self::default()
        }
    }
}
