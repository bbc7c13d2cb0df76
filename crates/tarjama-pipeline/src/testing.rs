//! A chat engine for unit tests that counts tokens and answers nothing: one token per
//! word, so a test can say exactly how a text measures against a budget.

use tarjama_chat::{ChatEngine, Completion, Error, Message, Result, SamplingParams};

/// Counts a token per whitespace-separated word; refuses every request.
#[derive(Debug)]
pub(crate) struct Words;

impl ChatEngine for Words {
    fn chat(
        &self,
        _: &[Message],
        _: &SamplingParams,
        _: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        Err(Error::Unsupported(
            "a unit test's engine answers nothing".into(),
        ))
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.split_whitespace().count())
    }

    fn max_context(&self) -> usize {
        4096
    }
}
