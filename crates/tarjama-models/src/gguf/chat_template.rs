//! Renders the GGUF chat template (`tokenizer.chat_template`, Jinja) into a prompt.
