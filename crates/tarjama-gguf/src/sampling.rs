//! The sampler: picks the next token from a GGUF model's logits as
//! [`SamplingParams`] say.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tarjama_chat::SamplingParams;

use crate::Result;

/// candle's sampling rule for these settings.
fn sampling(params: &SamplingParams) -> Sampling {
    if params.temperature <= 0.0 {
        return Sampling::ArgMax;
    }
    let temperature = params.temperature;
    match (params.top_k, params.top_p) {
        (None, None) => Sampling::All { temperature },
        (Some(k), None) => Sampling::TopK { k, temperature },
        (None, Some(p)) => Sampling::TopP { p, temperature },
        (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
    }
}

/// Picks tokens from logits according to [`SamplingParams`].
pub struct Sampler {
    processor: LogitsProcessor,
    penalty: f32,
    last_n: usize,
    /// (epsilon, temperature) when epsilon sampling is on.
    epsilon: Option<(f64, f64)>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("penalty", &self.penalty)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// A sampler for these settings, its random generator seeded.
    pub fn new(params: &SamplingParams) -> Self {
        Sampler {
            processor: LogitsProcessor::from_sampling(params.seed, sampling(params)),
            penalty: params.repetition_penalty,
            last_n: params.repeat_last_n,
            epsilon: params
                .epsilon
                .filter(|&e| e > 0.0 && params.temperature > 0.0)
                .map(|e| (e, params.temperature)),
        }
    }

    /// The next token given the logits (vocab,) and every token so far.
    pub fn next(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32> {
        let logits = if self.penalty != 1.0 && !history.is_empty() {
            let start = history.len().saturating_sub(self.last_n);
            candle_transformers::utils::apply_repeat_penalty(
                logits,
                self.penalty,
                &history[start..],
            )?
        } else {
            logits.clone()
        };
        let logits = match self.epsilon {
            Some((epsilon, temperature)) => epsilon_cut(&logits, epsilon, temperature)?,
            None => logits,
        };
        Ok(self.processor.sample(&logits)?)
    }
}

/// `logits` with every token whose probability at `temperature` is below `epsilon` set to
/// minus infinity; the most likely token is always kept.
fn epsilon_cut(logits: &Tensor, epsilon: f64, temperature: f64) -> Result<Tensor> {
    let mut values: Vec<f32> = logits
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return Ok(logits.clone());
    }
    let scale = 1.0 / temperature;
    let total: f64 = values
        .iter()
        .map(|&v| (f64::from(v - max) * scale).exp())
        .sum();
    // p = exp((v - max) / T) / total < epsilon  <=>  v < max + T * ln(epsilon * total)
    let cut = f64::from(max) + temperature * (epsilon * total).ln();
    for v in &mut values {
        if f64::from(*v) < cut && *v < max {
            *v = f32::NEG_INFINITY;
        }
    }
    Ok(Tensor::from_vec(values, logits.shape(), logits.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_drops_the_unlikely_tokens_only() {
        // Probabilities at temperature 1: about 0.665, 0.245, 0.090, 0.0001.
        let logits = Tensor::new(&[3.0f32, 2.0, 1.0, -6.0], &candle_core::Device::Cpu).unwrap();
        let cut: Vec<f32> = epsilon_cut(&logits, 0.02, 1.0).unwrap().to_vec1().unwrap();
        assert_eq!(cut, [3.0, 2.0, 1.0, f32::NEG_INFINITY]);
        // At a lower temperature the distribution is sharper: 0.1 falls below too.
        let cut: Vec<f32> = epsilon_cut(&logits, 0.02, 0.5).unwrap().to_vec1().unwrap();
        assert_eq!(cut, [3.0, 2.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        // The most likely token is kept whatever epsilon is.
        let cut: Vec<f32> = epsilon_cut(&logits, 0.99, 1.0).unwrap().to_vec1().unwrap();
        assert_eq!(cut[0], 3.0);
        assert!(cut[1..].iter().all(|v| *v == f32::NEG_INFINITY));
    }

    #[test]
    fn epsilon_sampling_never_picks_a_cut_token() {
        let logits = Tensor::new(&[3.0f32, 2.0, 1.0, 2.9], &candle_core::Device::Cpu).unwrap();
        let params = SamplingParams {
            temperature: 1.0,
            epsilon: Some(0.2),
            ..SamplingParams::default()
        };
        let mut sampler = Sampler::new(&params);
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            seen[sampler.next(&logits, &[]).unwrap() as usize] += 1;
        }
        // p = 0.41, 0.15, 0.06, 0.37: token 2 is under 0.2 and so is token 1.
        assert_eq!(seen[1] + seen[2], 0, "{seen:?}");
        assert!(seen[0] > 100 && seen[3] > 100, "{seen:?}");
    }
}
