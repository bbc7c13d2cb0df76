//! A chat model from one GGUF file: the transformer, its tokenizer and chat template, and
//! the generation loop with streaming, stop conditions and prompt-prefix reuse.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use super::chat_template::ChatTemplate;
use super::model::{self, Transformer};
use super::tokenizer::GgufTokenizer;
use tarjama_chat::{
    find_stop, has_sentences, repeats_earlier, Completion, Message, SamplingParams, StopReason,
};

use crate::sampling::Sampler;
use crate::{Error, Result};

/// How to load a chat model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Cap on the context in tokens (the KV cache and rotary tables are sized by it).
    pub max_context: usize,
    /// A Jinja chat template replacing the file's.
    pub chat_template: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_context: 8192,
            chat_template: None,
        }
    }
}

/// A loaded GGUF chat model.
pub struct ChatModel {
    transformer: Transformer,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    /// The tokens whose keys and values are in the transformer's cache, in order.
    cached: Vec<u32>,
    path: PathBuf,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("path", &self.path)
            .field("hparams", self.transformer.hparams())
            .finish_non_exhaustive()
    }
}

impl ChatModel {
    /// Loads the model, tokenizer and chat template of a GGUF file.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let (mut file, ct) = model::read_header(path)?;
        let tokenizer = GgufTokenizer::from_gguf(&ct, path)?;
        let template = match &options.chat_template {
            Some(source) => {
                let piece = |id: Option<u32>| {
                    id.and_then(|id| tokenizer.decode(&[id], false).ok())
                        .unwrap_or_default()
                };
                ChatTemplate::from_source(
                    source.clone(),
                    piece(tokenizer.bos),
                    piece(tokenizer.eos),
                )?
            }
            None => ChatTemplate::from_gguf(&ct, &tokenizer, path)?.ok_or_else(|| {
                Error::bad_file(
                    path,
                    "no chat template (`tokenizer.chat_template`) in the file; \
                     give one in the model's manifest",
                )
            })?,
        };
        let transformer =
            Transformer::load(&ct, &mut file, path, &Device::Cpu, options.max_context)?;
        Ok(ChatModel {
            transformer,
            tokenizer,
            template,
            cached: Vec::new(),
            path: path.to_path_buf(),
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The transformer (for benchmarks and parity checks).
    pub fn transformer_mut(&mut self) -> &mut Transformer {
        &mut self.transformer
    }

    /// The context window in tokens.
    pub fn max_context(&self) -> usize {
        self.transformer.max_context()
    }

    /// Bytes of keys and values one position of one sequence takes (over all layers):
    /// what [`auto_parallel`](crate::engine::auto_parallel) weighs against a KV budget.
    pub fn kv_bytes_per_position(&self) -> usize {
        self.transformer.new_cache().bytes_per_position()
    }

    /// How many tokens `text` takes (no special tokens).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text, false, false)?.len())
    }

    /// The prompt token ids for `messages`, ready for the assistant's turn.
    pub fn prompt_tokens(&self, messages: &[Message]) -> Result<Vec<u32>> {
        prompt_tokens(&self.template, &self.tokenizer, messages)
    }

    /// The transformer, tokenizer, chat template and file, taken apart (to hand them to
    /// an [`super::Engine`]).
    pub(crate) fn into_parts(self) -> (Transformer, GgufTokenizer, ChatTemplate, PathBuf) {
        (self.transformer, self.tokenizer, self.template, self.path)
    }

    /// Generates the assistant's answer to `messages`, calling `on_text` with each piece of
    /// text as soon as it is complete.
    pub fn chat(
        &mut self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let ids = self.prompt_tokens(messages)?;
        self.generate(&ids, params, on_text)
    }

    /// Generates from raw prompt token ids.
    pub fn generate(
        &mut self,
        ids: &[u32],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let max_context = self.max_context();
        check_prompt(ids, max_context)?;
        // Reuse the cached keys and values of the longest common prefix with the last
        // call (typically the system prompt and instructions); at least one token must be
        // fed to get logits.
        let common = self
            .cached
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        self.transformer.truncate_cache(common)?;
        self.cached.truncate(common);

        let ChatModel {
            transformer,
            tokenizer,
            cached,
            ..
        } = self;
        let mut feed = |tokens: &[u32]| -> Result<candle_core::Tensor> {
            let logits = transformer.forward(tokens)?;
            cached.extend_from_slice(tokens);
            Ok(logits)
        };
        let start = Instant::now();
        let mut logits = feed(&ids[common..])?;
        let prefill = start.elapsed();

        let mut decoding = Decoding::new(tokenizer, ids, params, max_context);
        let decode_start = Instant::now();
        let stop = loop {
            match decoding.next(&logits, on_text)? {
                Next::Feed(token) => logits = feed(&[token])?,
                Next::Stop(reason) => break reason,
            }
        };
        let (text, generated) = decoding.finish(stop, on_text);
        Ok(Completion {
            text,
            prompt_tokens: ids.len(),
            reused_tokens: common,
            generated_tokens: generated,
            stop,
            prefill,
            decode: decode_start.elapsed(),
        })
    }

    /// Forgets the cached prompt prefix.
    pub fn reset(&mut self) -> Result<()> {
        self.cached.clear();
        self.transformer.truncate_cache(0)
    }
}

/// The prompt token ids for `messages` rendered by `template`, ready for the assistant's
/// turn.
pub(crate) fn prompt_tokens(
    template: &ChatTemplate,
    tokenizer: &GgufTokenizer,
    messages: &[Message],
) -> Result<Vec<u32>> {
    let prompt = template.render(messages, true)?;
    let mut ids = tokenizer.encode(&prompt, false, true)?;
    // Templates that print the BOS token themselves (Gemma) must not get a second one.
    if let (true, Some(bos)) = (tokenizer.add_bos, tokenizer.bos) {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    Ok(ids)
}

/// A prompt must hold a token, and leave room in the context for at least one more.
pub(crate) fn check_prompt(ids: &[u32], max_context: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::Tokenizer("empty prompt".into()));
    }
    if ids.len() >= max_context {
        return Err(Error::ContextOverflow {
            needed: ids.len() + 1,
            max: max_context,
        });
    }
    Ok(())
}

/// What a sequence does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Feed this token next.
    Feed(u32),
    /// Generation is over.
    Stop(StopReason),
}

/// One sequence's generation after its prompt: sampling, detokenizing, streaming and
/// stop conditions. The single-sequence loop ([`ChatModel::generate`]) and the batched
/// engine ([`super::engine`]) drive it the same way, so they stop alike.
pub(crate) struct Decoding<'t> {
    tokenizer: &'t GgufTokenizer,
    stream: super::tokenizer::TokenStream<'t>,
    sampler: Sampler,
    params: SamplingParams,
    prompt_len: usize,
    max_context: usize,
    /// The prompt and every token generated.
    history: Vec<u32>,
    text: String,
    /// Bytes of `text` already given to `on_text`.
    emitted: usize,
    /// Bytes held back because they could still become a stop string.
    hold: usize,
    generated: usize,
}

impl<'t> Decoding<'t> {
    pub(crate) fn new(
        tokenizer: &'t GgufTokenizer,
        prompt: &[u32],
        params: &SamplingParams,
        max_context: usize,
    ) -> Self {
        Decoding {
            tokenizer,
            stream: tokenizer.stream(true),
            sampler: Sampler::new(params),
            params: params.clone(),
            prompt_len: prompt.len(),
            max_context,
            history: prompt.to_vec(),
            text: String::new(),
            emitted: 0,
            hold: params.stop.iter().map(|s| s.len()).max().unwrap_or(0),
            generated: 0,
        }
    }

    /// Picks the next token from the logits of the last one fed, streams what text is
    /// final, and says whether to go on.
    pub(crate) fn next(
        &mut self,
        logits: &candle_core::Tensor,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Next> {
        let params = &self.params;
        if self.generated >= params.max_new_tokens {
            return Ok(Next::Stop(StopReason::Length));
        }
        let next = self.sampler.next(logits, &self.history)?;
        if self.tokenizer.is_end_of_turn(next) {
            return Ok(Next::Stop(StopReason::EndOfTurn));
        }
        self.generated += 1;
        self.history.push(next);
        if let Some(piece) = self.stream.push(next)? {
            self.text.push_str(&piece);
        }
        if let Some(cut) = find_stop(&self.text, &params.stop) {
            self.text.truncate(cut);
            return Ok(Next::Stop(StopReason::StopString));
        }
        let safe = floor_char_boundary(&self.text, self.text.len().saturating_sub(self.hold));
        if safe > self.emitted {
            on_text(&self.text[self.emitted..safe]);
            self.emitted = safe;
        }
        if self.prompt_len + self.generated >= self.max_context {
            return Ok(Next::Stop(StopReason::Context));
        }
        if repeats_earlier(&self.history[self.prompt_len..], params.stop_on_loop) {
            return Ok(Next::Stop(StopReason::Loop));
        }
        if has_sentences(&self.text, params.stop_after_sentences) {
            return Ok(Next::Stop(StopReason::Sentences));
        }
        Ok(Next::Feed(next))
    }

    /// Tokens generated so far.
    pub(crate) fn generated(&self) -> usize {
        self.generated
    }

    /// The whole text, the rest of it streamed; and the number of tokens generated.
    pub(crate) fn finish(
        mut self,
        stop: StopReason,
        on_text: &mut dyn FnMut(&str),
    ) -> (String, usize) {
        if stop != StopReason::StopString {
            if let Some(rest) = self.stream.finish() {
                self.text.push_str(&rest);
            }
        }
        if self.text.len() > self.emitted {
            on_text(&self.text[self.emitted..]);
        }
        (self.text, self.generated)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
