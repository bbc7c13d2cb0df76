//! What the pipelines need from a chat model, whatever runs it: count tokens, and answer
//! a chat with sampling settings while streaming the text.
//!
//! The batched [`Engine`] answers many requests at once, from any number of threads; a
//! single-sequence [`ChatModel`] answers one at a time behind a mutex. Pipelines ask
//! [`ChatEngine::parallel`] how many requests are worth having in flight.

use std::borrow::{Borrow, BorrowMut};
use std::sync::{Arc, Mutex};

use crate::gguf::chat_template::Message;
use crate::gguf::{ChatModel, Completion, Engine};
use crate::sampling::SamplingParams;
use crate::{Error, Result};

/// A chat model as the pipelines use it.
pub trait ChatEngine: Send + Sync {
    /// The assistant's answer to `messages`, its text streamed to `on_text` as it comes.
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion>;

    /// How many tokens `text` takes.
    fn count_tokens(&self, text: &str) -> Result<usize>;

    /// The context window in tokens.
    fn max_context(&self) -> usize;

    /// Requests worth having in flight at once (1: one after the other).
    fn parallel(&self) -> usize {
        1
    }
}

impl ChatEngine for Engine {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        Engine::chat(self, messages, params, on_text)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Engine::count_tokens(self, text)
    }

    fn max_context(&self) -> usize {
        Engine::max_context(self)
    }

    fn parallel(&self) -> usize {
        self.options().parallel.max(1)
    }
}

/// One model that answers one request at a time (owned, or borrowed for a while).
impl<M: BorrowMut<ChatModel> + Send> ChatEngine for Mutex<M> {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let mut model = self.lock().map_err(|_| poisoned())?;
        BorrowMut::<ChatModel>::borrow_mut(&mut *model).chat(messages, params, on_text)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        let model = self.lock().map_err(|_| poisoned())?;
        Borrow::<ChatModel>::borrow(&*model).count_tokens(text)
    }

    fn max_context(&self) -> usize {
        self.lock()
            .map_or(0, |m| Borrow::<ChatModel>::borrow(&*m).max_context())
    }
}

fn poisoned() -> Error {
    Error::Unsupported("the model failed in another thread".into())
}

impl<E: ChatEngine + ?Sized> ChatEngine for Arc<E> {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        (**self).chat(messages, params, on_text)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        (**self).count_tokens(text)
    }

    fn max_context(&self) -> usize {
        (**self).max_context()
    }

    fn parallel(&self) -> usize {
        (**self).parallel()
    }
}

impl<E: ChatEngine + ?Sized> ChatEngine for &E {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        (**self).chat(messages, params, on_text)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        (**self).count_tokens(text)
    }

    fn max_context(&self) -> usize {
        (**self).max_context()
    }

    fn parallel(&self) -> usize {
        (**self).parallel()
    }
}
