//! What the tests and examples of greedy decoding share.

/// The index of the largest logit, the first of equals (greedy decoding's pick).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}
