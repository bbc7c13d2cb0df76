//! Renders the GGUF chat template (`tokenizer.chat_template`, Jinja) into a prompt.
//!
//! Chat templates are written for Python's jinja2 as Hugging Face transformers sets it
//! up: `trim_blocks` and `lstrip_blocks` on, loop controls, Python string methods
//! (`.strip()`, `.startswith()`...) and a `raise_exception(message)` function. The same
//! environment is built here with minijinja and minijinja-contrib's Python
//! compatibility, and fed what transformers feeds it: `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token`. `strftime_now` and tool
//! definitions are not provided, so templates that use them take their
//! "not defined" branch.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use minijinja::{context, Environment, ErrorKind};

use super::tokenizer::GgufTokenizer;
use crate::{Error, Result};
use tarjama_chat::Message;

/// The metadata key holding the template.
const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
/// The name the template is registered under in its environment.
const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template with the BOS and EOS texts it may print.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The Jinja source, kept for [`ChatTemplate::source`].
    source: String,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl ChatTemplate {
    /// Reads `tokenizer.chat_template` from a GGUF file; `None` when the file has none
    /// (base models often do not). BOS and EOS texts come from `tok`. `path` only names
    /// the file in errors.
    pub fn from_gguf(
        content: &Content,
        tok: &GgufTokenizer,
        path: &Path,
    ) -> Result<Option<ChatTemplate>> {
        let Some(value) = content.metadata.get(KEY_CHAT_TEMPLATE) else {
            return Ok(None);
        };
        let Value::String(source) = value else {
            return Err(Error::bad_file(
                path,
                format!(
                    "`{KEY_CHAT_TEMPLATE}` should be a string, found {:?}",
                    value.value_type()
                ),
            ));
        };
        let text = |id: Option<u32>| {
            id.and_then(|id| tok.tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        ChatTemplate::from_source(source.clone(), text(tok.bos), text(tok.eos))
            .map(Some)
            .map_err(|e| {
                Error::bad_file(path, format!("`{KEY_CHAT_TEMPLATE}` does not compile: {e}"))
            })
    }

    /// Compiles a template given as text (a manifest override, for instance), with the
    /// texts `bos_token` and `eos_token` stand for.
    pub fn from_source(template: String, bos: String, eos: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(TEMPLATE_NAME, template.clone())?;
        Ok(ChatTemplate {
            env,
            source: template,
            bos,
            eos,
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the conversation into a prompt; with `add_generation_prompt` the prompt
    /// ends where the assistant's reply starts. A template that rejects the
    /// conversation (`raise_exception`) gives [`Error::ChatTemplate`] with its message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(TEMPLATE_NAME)?;
        Ok(template.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })?)
    }
}

/// transformers' `raise_exception`: lets a template refuse a conversation.
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatml() -> ChatTemplate {
        ChatTemplate::from_source(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.strip() }}<|im_end|>\n{% endfor %}\
             {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
                .to_string(),
            "<s>".to_string(),
            "<|im_end|>".to_string(),
        )
        .unwrap()
    }

    #[test]
    fn renders_python_string_methods_and_generation_prompt() {
        let t = chatml();
        let out = t.render(&[Message::new("user", "  hi \n")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&[Message::new("user", "hi")], false).unwrap();
        assert_eq!(out, "<|im_start|>user\nhi<|im_end|>\n");
    }

    #[test]
    fn raise_exception_becomes_an_error_with_its_message() {
        let t = ChatTemplate::from_source(
            "{% if messages|length == 0 %}{{ raise_exception('no messages') }}{% endif %}ok"
                .to_string(),
            String::new(),
            String::new(),
        )
        .unwrap();
        let err = t.render(&[], true).unwrap_err();
        assert!(err.to_string().contains("no messages"), "{err}");
        assert_eq!(t.render(&[Message::new("user", "x")], true).unwrap(), "ok");
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        let err = ChatTemplate::from_source("{% for %}".into(), String::new(), String::new())
            .unwrap_err();
        assert!(matches!(err, Error::ChatTemplate(_)), "{err}");
    }
}
