#!/usr/bin/env python3
"""Reference fixtures for tarjama's GGUF tokenizer and chat-template rendering.

Tokenizes the FLORES-200 devtest (Arabic and English) with llama.cpp (through
llama-cpp-python, `vocab_only=True`) for each GGUF model found, and renders chat
templates with Python's jinja2 the way Hugging Face transformers does. The Rust test
`crates/tarjama-gguf/tests/tokenizer.rs` must reproduce every id and string.

Writes into crates/tarjama-gguf/tests/fixtures/gguf/:
  <model>.<lang>.ids      one line of space-separated token ids per FLORES line
  tokenizer_cases.json    llama.cpp version, GGUF sha256s, special-token cases
  chat_templates.json     templates, conversations and the prompts jinja2 renders

Only token ids are written, never FLORES text.

    pip install -r scripts/requirements-llamacpp.txt
    python scripts/gguf_tokenizer_parity.py [--models DIR] [--flores DIR]

Models are looked up in $TARJAMA_HOME/models (default: ~/.cache/tarjama/models);
FLORES in --flores, else $TARJAMA_FLORES, else tests/data/flores200 in the repository.
llama-cpp-python does not report which llama.cpp commit it vendors; set
LLAMA_CPP_COMMIT (the `vendor/llama.cpp` commit of the sdist, 0c1e57098bba for 0.3.36)
to record it. Reruns with the same versions write byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates" / "tarjama-gguf" / "tests" / "fixtures" / "gguf"

# (fixture name, GGUF file name in the models folder)
MODELS = [
    ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf"),
]
LANGS = ["arb_Arab", "eng_Latn"]

# Strings that exercise special tokens, user-defined tokens, whitespace runs, bytes
# outside the vocabulary and the like; each is tokenized with several flag settings.
SPECIAL_TEXTS = [
    "<|im_start|>system\nYou translate Arabic news.<|im_end|>\n<|im_start|>user\nمرحبا بالعالم<|im_end|>\n<|im_start|>assistant\n",
    "<bos><start_of_turn>user\nترجم: الطقس جميل اليوم<end_of_turn>\n<start_of_turn>model\n",
    "<|endoftext|>text after eos<|im_end|>",
    "  two  spaces,\ttab\t\ttabs\n\nblank line\n\n\n   end   ",
    "<b>bold</b> <table><tr><td>x</td></tr></table> <0x41> [multimodal]",
    "",
    " ",
    "\n",
    "émoji 🤖 family 👩‍👩‍👧 flag 🇪🇬 and rare 𝔹 ꙮ 𓀀",
    "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ، ١٢٣٤٥ و 2024م",
    "don't I'LL we've THEY'RE 1234567 3.14159 x=y+z",
    "<|im_start|><|im_start|>nested<|im_end|><|im_end|>",
    "<end_of_turn><end_of_turn><eos>",
]
FLAGS = [(True, False), (True, True), (False, True), (False, False)]

GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "Translate into English:\nقال الرئيس إن الاقتصاد ينمو."}],
    [
        {"role": "system", "content": "You are a careful Arabic-English translator."},
        {"role": "user", "content": "  مرحبا بالعالم  \n"},
        {"role": "assistant", "content": "Hello, world."},
        {"role": "user", "content": "And: \"شكرا\" <b>now</b>"},
    ],
    [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
    ],
    # Not alternating: Gemma's template raises, the others render.
    [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ],
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_models_dir() -> Path:
    home = os.environ.get("TARJAMA_HOME")
    if home:
        return Path(home) / "models"
    return Path.home() / ".cache" / "tarjama" / "models"


def default_flores_dir() -> Path:
    env = os.environ.get("TARJAMA_FLORES")
    return Path(env) if env else REPO / "tests" / "data" / "flores200"


def read_lines(path: Path) -> list[str]:
    # Lines without their "\n"; FLORES has no "\r".
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def pieces(llm, ids: list[int], special: bool) -> str:
    import llama_cpp

    out = b""
    buf = (llama_cpp.ctypes.c_char * 256)()
    for i in ids:
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, i, buf, 256, 0, special)
        out += bytes(buf[:n])
    return out.decode("utf-8", errors="replace")


def tokenizer_fixtures(models_dir: Path, flores: Path) -> dict:
    import llama_cpp

    cases = {
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_commit": os.environ.get("LLAMA_CPP_COMMIT", "unknown"),
        "flores_lines": {},
        "models": {},
    }
    texts = {lang: read_lines(flores / f"{lang}.devtest") for lang in LANGS}
    for lang, lines in texts.items():
        cases["flores_lines"][lang] = len(lines)
    for name, file in MODELS:
        path = models_dir / file
        if not path.exists():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        print(f"{name}: hashing and loading {path}", file=sys.stderr)
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        model = {"file": file, "sha256": sha256(path), "ids_files": {}, "special": []}
        for lang, lines in texts.items():
            out = f"{name}.{lang}.ids"
            rows = []
            for line in lines:
                ids = llm.tokenize(line.encode("utf-8"), add_bos=True, special=False)
                rows.append(" ".join(map(str, ids)))
            (OUT / out).write_text("\n".join(rows) + "\n", encoding="ascii")
            model["ids_files"][lang] = out
            print(f"  {lang}: {len(rows)} lines -> {out}", file=sys.stderr)
        for text in SPECIAL_TEXTS:
            for add_special, parse_special in FLAGS:
                ids = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)
                model["special"].append(
                    {
                        "text": text,
                        "add_special": add_special,
                        "parse_special": parse_special,
                        "ids": ids,
                        "pieces_special": pieces(llm, ids, True),
                        "pieces_plain": pieces(llm, ids, False),
                    }
                )
        model["chat_template"] = llm.metadata.get("tokenizer.chat_template")
        cases["models"][name] = model
    return cases


def render_env():
    # As transformers' `_compile_jinja_template`: sandboxed, trim_blocks,
    # lstrip_blocks, loop controls, raise_exception.
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.globals["raise_exception"] = raise_exception
    return env


def chat_fixtures(qwen_template: str | None) -> dict:
    templates = {
        "gemma3": {"source": GEMMA3_TEMPLATE, "bos_token": "<bos>", "eos_token": "<eos>"},
        "llama3": {
            "source": LLAMA3_TEMPLATE,
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
        },
    }
    if qwen_template is not None:
        templates["qwen2.5"] = {
            "source": qwen_template,
            "bos_token": "<|endoftext|>",
            "eos_token": "<|im_end|>",
        }
    env = render_env()
    cases = []
    for name, t in templates.items():
        compiled = env.from_string(t["source"])
        for messages in CONVERSATIONS:
            for add_generation_prompt in (True, False):
                case = {
                    "template": name,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                }
                try:
                    case["expected"] = compiled.render(
                        messages=messages,
                        add_generation_prompt=add_generation_prompt,
                        bos_token=t["bos_token"],
                        eos_token=t["eos_token"],
                    )
                except Exception as e:  # the template's own raise_exception
                    case["error"] = str(e)
                cases.append(case)
    import jinja2

    return {"jinja2": jinja2.__version__, "templates": templates, "cases": cases}


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=default_models_dir())
    ap.add_argument("--flores", type=Path, default=default_flores_dir())
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    OUT = args.out
    OUT.mkdir(parents=True, exist_ok=True)
    if not (args.flores / "arb_Arab.devtest").exists():
        sys.exit(f"FLORES devtest not found in {args.flores} (set TARJAMA_FLORES)")

    tok = tokenizer_fixtures(args.models, args.flores)
    qwen = tok["models"].get("qwen2.5-coder-0.5b-instruct", {}).get("chat_template")
    for m in tok["models"].values():
        m.pop("chat_template", None)
    (OUT / "tokenizer_cases.json").write_text(json.dumps(tok, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    chat = chat_fixtures(qwen)
    (OUT / "chat_templates.json").write_text(json.dumps(chat, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote fixtures to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
