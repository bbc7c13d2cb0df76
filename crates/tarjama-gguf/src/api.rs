//! The GGUF runtimes as [`ChatEngine`]s: the batched [`Engine`], and one [`ChatModel`]
//! behind a mutex (one request at a time).

use std::ops::ControlFlow;
use std::sync::Mutex;

use tarjama_chat::{ChatEngine, Completion, Error, Message, Result, SamplingParams, TokenCounter};

use crate::chat::ChatModel;
use crate::engine::Engine;
use crate::tokenizer::GgufTokenizer;

impl ChatEngine for Engine {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        Ok(Engine::chat(self, messages, params, on_text)?)
    }

    fn chat_until(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        Engine::chat_until(self, messages, params, on_text)?.ok_or(Error::Cancelled)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(Engine::count_tokens(self, text)?)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer().encode(text, false, false)?)
    }

    fn max_context(&self) -> usize {
        Engine::max_context(self)
    }

    fn parallel(&self) -> usize {
        self.options().parallel.max(1)
    }

    fn chat_many(
        &self,
        messages: &[Message],
        params: &[SamplingParams],
    ) -> Vec<Result<Completion>> {
        Engine::chat_many(self, messages, params)
            .into_iter()
            .map(|r| r.map_err(Into::into))
            .collect()
    }
}

/// One model that answers one request at a time, as a [`ChatEngine`] (the batched
/// [`Engine`] answers many at once).
#[derive(Debug)]
pub struct Serial(Mutex<ChatModel>);

impl Serial {
    /// Serves `model` one request at a time.
    pub fn new(model: ChatModel) -> Self {
        Serial(Mutex::new(model))
    }

    /// The model back.
    pub fn into_inner(self) -> ChatModel {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChatEngine for Serial {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let mut model = self.0.lock().map_err(|_| poisoned())?;
        Ok(model.chat(messages, params, on_text)?)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        let model = self.0.lock().map_err(|_| poisoned())?;
        Ok(model.count_tokens(text)?)
    }

    fn max_context(&self) -> usize {
        self.0.lock().map_or(0, |m| m.max_context())
    }

    fn forget(&self) -> Result<()> {
        let mut model = self.0.lock().map_err(|_| poisoned())?;
        Ok(model.reset()?)
    }
}

fn poisoned() -> Error {
    Error::Unsupported("the model failed in another thread".into())
}

impl TokenCounter for GgufTokenizer {
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text, false, false)?.len())
    }
}
