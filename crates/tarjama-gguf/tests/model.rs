//! The unified GGUF transformer against candle's own quantized Qwen2 on the same real
//! file (weights as stored): same logits for the same tokens, through prefill, decode
//! steps, and a cache cut back to a shared prefix.
//!
//! Needs the model files in the model folder (`tarjama models pull NAME`); skipped with a
//! note when absent, unless `TARJAMA_REQUIRE_MODELS=1` (CI), where absence fails.

use candle_core::{Device, Tensor};
use tarjama_gguf::model::{Transformer, WeightLayout};
use tarjama_testkit::require_model_file;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn argmax(t: &Tensor) -> u32 {
    t.argmax(0).unwrap().to_scalar::<u32>().unwrap()
}

// Token ids of a short ChatML prompt in Qwen's vocabulary; any valid ids do.
const PROMPT: &[u32] = &[
    151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 31115, 419,
    1119, 6364, 25, 220, 124047, 130648, 151645, 198, 151644, 77091, 198,
];

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn qwen2_matches_candle_quantized_qwen2() {
    let Some(path) = require_model_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    let dev = Device::Cpu;
    // The file's own layout: candle's model multiplies the weights as stored, so the two
    // graphs can be compared number for number. (The default layout rewrites some weights
    // for faster kernels; tests/gguf_generate.rs checks it against llama.cpp.)
    let mut ours = Transformer::from_path_with(&path, &dev, 4096, WeightLayout::AsStored).unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut theirs =
        candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(ct, &mut file, &dev)
            .unwrap();

    let input = Tensor::new(PROMPT, &dev).unwrap().unsqueeze(0).unwrap();
    let a = ours.forward(PROMPT).unwrap();
    let b = theirs.forward(&input, 0).unwrap().flatten_all().unwrap();
    let diff = max_abs_diff(&a, &b);
    assert!(diff < 1e-2, "prefill logits differ by {diff}");

    // Three greedy decode steps, fed one token at a time.
    let mut next = argmax(&a);
    for step in 0..3 {
        let pos = PROMPT.len() + step;
        let a = ours.forward(&[next]).unwrap();
        let b = theirs
            .forward(&Tensor::new(&[[next]], &dev).unwrap(), pos)
            .unwrap()
            .flatten_all()
            .unwrap();
        let diff = max_abs_diff(&a, &b);
        assert!(diff < 1e-2, "decode step {step} logits differ by {diff}");
        assert_eq!(argmax(&a), argmax(&b));
        next = argmax(&a);
    }

    // Cutting the cache back to a prefix and feeding the rest again gives the same logits
    // as the full prefill: the basis of prompt-prefix reuse.
    ours.truncate_cache(10).unwrap();
    assert_eq!(ours.cache_len(), 10);
    let again = ours.forward(&PROMPT[10..]).unwrap();
    let fresh = {
        ours.truncate_cache(0).unwrap();
        ours.forward(PROMPT).unwrap()
    };
    let diff = max_abs_diff(&again, &fresh);
    assert!(diff < 1e-3, "prefix reuse changes logits by {diff}");
}

// No such check for Gemma 3: candle's quantized_gemma3 uses SiLU in the MLP where Gemma 3
// (Hugging Face `gelu_pytorch_tanh`, llama.cpp `LLM_FFN_GELU`) uses tanh-GELU, so it is not
// a reference. Gemma 3 is checked against llama.cpp's greedy output instead
// (tests/gguf_generate.rs).

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn truncated_file_is_reported_as_truncated() {
    let Some(path) = require_model_file("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Transformer::from_path(&cut, &Device::Cpu, 1024).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cut.gguf") && msg.contains("truncated"),
        "{msg}"
    );

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let msg = Transformer::from_path(&junk, &Device::Cpu, 1024)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("junk.gguf") && msg.contains("GGUF"), "{msg}");
}
