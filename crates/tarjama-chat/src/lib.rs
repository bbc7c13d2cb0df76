//! What an application needs from a chat model, whatever runs it: count tokens, and
//! answer a chat with sampling settings while streaming the text.
//!
//! The types here belong to no engine and this crate runs no model. The batched GGUF
//! engine (crate `tarjama-gguf`) answers many requests at once, from any number of
//! threads; a single-sequence GGUF model answers one at a time behind a mutex; a remote
//! server (crate `tarjama-remote`) answers over HTTP. The pipelines (crate
//! `tarjama-pipeline`) see only [`ChatEngine`], and ask [`ChatEngine::parallel`] how many
//! requests are worth having in flight.
#![deny(missing_docs)]

mod error;
mod sampling;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use error::{Error, Result};
pub use sampling::SamplingParams;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl Message {
    /// A message with the given role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// A stop string was produced.
    StopString,
    /// `max_new_tokens` was reached.
    Length,
    /// The context window is full.
    Context,
    /// The last tokens repeated earlier output (`SamplingParams::stop_on_loop`).
    Loop,
    /// Enough sentences were written (`SamplingParams::stop_after_sentences`); the text
    /// ends with the start of one more.
    Sentences,
}

/// The result of one generation, with its timings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Completion {
    /// The generated text (stop string and end-of-turn token excluded).
    pub text: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from the previous call.
    pub reused_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Time spent on the prompt (prefill).
    pub prefill: Duration,
    /// Time spent generating after the first token.
    pub decode: Duration,
}

/// Counts the tokens of a text as a model's tokenizer splits it (no special tokens added):
/// what an engine that cannot count for itself (a server without a tokenizer route) is
/// lent by the model's local files.
pub trait TokenCounter: Send + Sync {
    /// How many tokens `text` takes.
    fn count_tokens(&self, text: &str) -> Result<usize>;

    /// The token ids of `text` (no special tokens), for engines that know them (a
    /// server's tokenize route); others answer [`Error::Unsupported`].
    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let _ = text;
        Err(Error::Unsupported(
            "this engine counts tokens but does not give their ids".into(),
        ))
    }
}

/// A chat model as the pipelines use it.
pub trait ChatEngine: Send + Sync {
    /// The assistant's answer to `messages`, its text streamed to `on_text` as it comes.
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion>;

    /// [`ChatEngine::chat`], for a caller that may stop listening: when `on_text` answers
    /// [`ControlFlow::Break`] (a client that went away), the request is abandoned and the
    /// call returns [`Error::Cancelled`]. The batched engine frees the request's sequence
    /// at its next token; an engine that cannot stop a request midway (the default)
    /// finishes it, passing nothing more to `on_text`.
    fn chat_until(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let mut cancelled = false;
        let result = self.chat(messages, params, &mut |text| {
            cancelled = cancelled || on_text(text).is_break();
        });
        if cancelled {
            return Err(Error::Cancelled);
        }
        result
    }

    /// How many tokens `text` takes.
    fn count_tokens(&self, text: &str) -> Result<usize>;

    /// The token ids of `text` (no special tokens), for engines that know them (a
    /// server's tokenize route); others answer [`Error::Unsupported`].
    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let _ = text;
        Err(Error::Unsupported(
            "this engine counts tokens but does not give their ids".into(),
        ))
    }

    /// The context window in tokens.
    fn max_context(&self) -> usize;

    /// Requests worth having in flight at once (1: one after the other).
    fn parallel(&self) -> usize {
        1
    }

    /// Answers to `messages`, one per entry of `params` (candidates: the same request with
    /// different sampling), in that order. Asked for concurrently (one alone on this
    /// thread); the batched engine starts them together, so that they compute the prompt
    /// once and share every step until their tokens differ.
    fn chat_many(
        &self,
        messages: &[Message],
        params: &[SamplingParams],
    ) -> Vec<Result<Completion>> {
        if let [one] = params {
            return vec![self.chat(messages, one, &mut |_| {})];
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = params
                .iter()
                .map(|p| scope.spawn(move || self.chat(messages, p, &mut |_| {})))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Unsupported("a request's thread panicked".into()))
                    })
                })
                .collect()
        })
    }

    /// Drops what is kept of earlier prompts for reuse, so the next prompt is computed in
    /// full (benchmarks time cold prompts this way). Engines that keep nothing, or cannot
    /// say, do nothing.
    fn forget(&self) -> Result<()> {
        Ok(())
    }
}

/// A shared or borrowed engine is the engine: every method passes straight through.
macro_rules! forward_chat_engine {
    ($($ty:ty),*) => {$(
        impl<E: ChatEngine + ?Sized> ChatEngine for $ty {
            fn chat(
                &self,
                messages: &[Message],
                params: &SamplingParams,
                on_text: &mut dyn FnMut(&str),
            ) -> Result<Completion> {
                (**self).chat(messages, params, on_text)
            }

            fn chat_until(
                &self,
                messages: &[Message],
                params: &SamplingParams,
                on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
            ) -> Result<Completion> {
                (**self).chat_until(messages, params, on_text)
            }

            fn count_tokens(&self, text: &str) -> Result<usize> {
                (**self).count_tokens(text)
            }

            fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
                (**self).tokenize(text)
            }

            fn max_context(&self) -> usize {
                (**self).max_context()
            }

            fn parallel(&self) -> usize {
                (**self).parallel()
            }

            fn chat_many(
                &self,
                messages: &[Message],
                params: &[SamplingParams],
            ) -> Vec<Result<Completion>> {
                (**self).chat_many(messages, params)
            }

            fn forget(&self) -> Result<()> {
                (**self).forget()
            }
        }
    )*};
}

forward_chat_engine!(Arc<E>, &E);

// The stop conditions of `SamplingParams`, applied alike by every engine.

/// Where the earliest of the `stops` strings begins in `text`.
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Whether `text` holds `n` (> 0) distinct complete sentences followed by more text: every
/// sentence but the last (which may still be growing) counts, repeats once.
pub fn has_sentences(text: &str, n: usize) -> bool {
    if n == 0 {
        return false;
    }
    let sentences: Vec<&str> = tarjama_text::split(text)
        .into_iter()
        .flat_map(|p| p.sentences.into_iter().map(|s| s.text))
        .collect();
    let Some((_, complete)) = sentences.split_last() else {
        return false;
    };
    let mut distinct: Vec<String> = complete.iter().map(|s| s.trim().to_lowercase()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() >= n
}

/// Whether the last `window` tokens (or characters) of `generated` also occur earlier in
/// it, one for one (`window` 0: never).
pub fn repeats_earlier<T: PartialEq>(generated: &[T], window: usize) -> bool {
    if window == 0 || generated.len() < 2 * window {
        return false;
    }
    let tail = &generated[generated.len() - window..];
    generated[..generated.len() - window]
        .windows(window)
        .any(|w| w == tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(find_stop("abc END\n\nx", &stops), Some(4));
        assert_eq!(find_stop("abc", &stops), None);
    }

    #[test]
    fn a_loop_is_a_repeat_of_the_last_window() {
        let text = [1, 2, 3, 4, 9, 1, 2, 3, 4];
        assert!(repeats_earlier(&text, 4));
        assert!(!repeats_earlier(&text, 5));
        assert!(!repeats_earlier(&text, 0));
        assert!(!repeats_earlier(&[1, 2, 3, 1, 2], 3));
    }

    #[test]
    fn enough_sentences_once_another_begins() {
        let two = "Putin met Witkoff. They talked for hours.";
        assert!(!has_sentences(two, 2), "the second may still be growing");
        assert!(has_sentences(&format!("{two} The"), 2));
        assert!(!has_sentences(&format!("{two} The"), 3));
        // A repeated sentence counts once.
        assert!(!has_sentences("A met B. A met B. Then", 2));
        assert!(!has_sentences(&format!("{two} The"), 0));
        // Citations after the full stop belong to the sentence before them.
        assert!(!has_sentences("A met B. [1] C met D. [2]", 2));
        assert!(!has_sentences("A met B.[1] C met D.[2][3]", 2));
    }
}
