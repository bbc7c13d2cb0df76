#!/usr/bin/env python3
"""Generate the reference fixtures for tarjama's encoder-decoder runner (crate tarjama-seq2seq,
module `seq2seq`).

It builds two tiny random-weight translation models in Hugging Face layout, a Marian
(OPUS-MT style) one and an M2M100 (NLLB style) one, with small but real SentencePiece
vocabularies trained on a few hundred FLORES-200 lines, and records what `transformers`
computes with them: token ids, encoder states, first-step logits, greedy and beam-search
outputs (ids, scores, decoded text), and the tokenizer ids of every FLORES Arabic line.

The FLORES text itself is never written into the fixtures: only the trained vocabularies
and the ids are. Tests that compare ids on FLORES read the text from the FLORES folder.

Usage (from the repository root):
    pip install -r scripts/requirements-seq2seq.txt
    python scripts/gen_seq2seq_fixtures.py [--flores DIR] [--out DIR]

FLORES is found via --flores, else $TARJAMA_FLORES, else tests/data/flores200 in the
repository.
"""

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import (
    GenerationConfig,
    M2M100Config,
    M2M100ForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    MarianTokenizer,
    NllbTokenizer,
)
from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

from tarjama_scripts import encoder_decoder_shape, marian_config_args

REPO = Path(__file__).resolve().parent.parent

# Our own Arabic sentences (not FLORES), of different lengths, with digits, Latin script
# and punctuation, so the model tests run without the FLORES folder.
INPUTS = [
    "قال الوزير إن الحكومة ستعلن عن خطة جديدة للنقل العام الأسبوع المقبل.",
    "ارتفعت الأسعار.",
    "وأضاف المتحدث باسم الأمم المتحدة أن أكثر من 2500 شخص نزحوا من منازلهم بسبب الفيضانات التي ضربت المنطقة يوم الثلاثاء، وأن فرق الإغاثة تعمل على إيصال المياه والغذاء.",
    "أعلنت شركة Nokia عن هاتف جديد في مؤتمر برشلونة.",
    "هل ستتوقف الحرب؟",
    "يعيش في المدينة نحو ثلاثة ملايين نسمة، ومعظمهم يعملون في الزراعة والتجارة والصيد.",
]

N_TRAIN = 300
MAX_LENGTH = 24
EOS_BIAS = 3.5  # added to </s>'s final_logits_bias in the Marian fixture
NLLB_EOS_SCALE = 2.5  # scales </s>'s lm_head row in the NLLB fixture
# The size of both fixture models, and their dropout (none, so that nothing depends on
# whether a model is in training mode).
SHAPE = dict(d_model=32, layers=2, heads=4, ffn=64)
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def train_spm(lines, vocab_size, **kw):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        character_coverage=1.0,
        minloglevel=2,
        **kw,
    )
    return buf.getvalue()


def scale_init(model, std, seed, emb_std=None, out_std=None):
    """Re-draws every weight with a larger std than HF's 0.02, so logits are well separated
    (near-ties would make greedy/beam fragile to float rounding) and outputs are not
    degenerate."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue
            if emb_std is not None and ("shared" in name or "embed_tokens" in name):
                # Small token embeddings let positions and cross-attention steer the
                # decoder; with large ones a random model maps each token to a fixed
                # successor and loops.
                p.copy_(emb_std * torch.randn(p.shape, generator=g))
                continue
            if out_std is not None and ("out_proj.weight" in name or "fc2.weight" in name):
                # Small residual branches keep each position's identity; large ones
                # collapse all positions onto one attention output.
                p.copy_(out_std * torch.randn(p.shape, generator=g))
                continue
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def tensor_list(t, digits=7):
    return [float(f"{x:.{digits}g}") for x in t.detach().flatten().tolist()]


GEN_CASES = [
    ("greedy", dict(num_beams=1)),
    ("beam4", dict(num_beams=4)),
    ("beam4_nbest", dict(num_beams=4, num_return_sequences=4)),
    ("beam4_lp06_early", dict(num_beams=4, length_penalty=0.6, early_stopping=True)),
    ("beam4_never_lp2", dict(num_beams=4, length_penalty=2.0, early_stopping="never")),
    ("beam3_norepeat2_rep13", dict(num_beams=3, no_repeat_ngram_size=2, repetition_penalty=1.3)),
    ("greedy_norepeat2_rep13", dict(num_beams=1, no_repeat_ngram_size=2, repetition_penalty=1.3)),
    ("beam4_min12_max16", dict(num_beams=4, min_length=12, max_new_tokens=15)),
]


def record_model(model, tok, out_dir, encode, extra_gen):
    """Runs the reference computations shared by both architectures."""
    model.eval()
    ref = {"inputs": INPUTS, "max_length": MAX_LENGTH, "tokenized": [], "cases": []}
    for text in INPUTS:
        ref["tokenized"].append(encode([text])["input_ids"][0].tolist())

    # Encoder states and first decoding steps on a padded batch of two inputs of very
    # different lengths (0 and 2), so the padding mask matters.
    batch = encode([INPUTS[0], INPUTS[2]])
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        greedy = model.generate(**batch, num_beams=1, max_length=MAX_LENGTH, **extra_gen)
        steps = 3
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=greedy[:, :steps],
        )
    ref["encoder"] = {
        "input_ids": batch["input_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
        "shape": list(enc.last_hidden_state.shape),
        "values": tensor_list(enc.last_hidden_state),
    }
    ref["step_logits"] = {
        "decoder_input_ids": greedy[:, :steps].tolist(),
        "shape": list(out.logits.shape),
        "values": tensor_list(out.logits),
    }

    for name, settings in GEN_CASES:
        case = {"name": name, "settings": settings, "outputs": []}
        nret = settings.get("num_return_sequences", 1)
        for text in INPUTS:
            single = encode([text])
            kwargs = dict(settings)
            if "max_new_tokens" not in kwargs:
                kwargs["max_length"] = MAX_LENGTH
            with torch.no_grad():
                res = model.generate(
                    **single, return_dict_in_generate=True, output_scores=True, **kwargs, **extra_gen
                )
            seqs = res.sequences
            scores = res.sequences_scores.tolist() if getattr(res, "sequences_scores", None) is not None else None
            texts = tok.batch_decode(seqs, skip_special_tokens=True)
            case["outputs"].append(
                {
                    "ids": [s.tolist() for s in seqs][:nret],
                    "scores": scores,
                    "texts": texts,
                }
            )
        ref["cases"].append(case)

    # The same settings on the whole set at once (padded batch): what each sentence gets
    # alone must come back in the batch too; recorded so the Rust test can check both.
    batch = encode(INPUTS)
    with torch.no_grad():
        res = model.generate(**batch, num_beams=4, max_length=MAX_LENGTH, **extra_gen)
    ref["batched_beam4"] = [s.tolist() for s in res]
    with open(out_dir / "reference.json", "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    return ref


def save_weights(model, out_dir):
    shared = model.model.shared.weight
    sd = {}
    for k, v in model.state_dict().items():
        # Tensors tied to `model.shared` are stored once, as transformers does; the loader
        # must re-tie them. Sinusoidal tables are computed, not learned: real checkpoints
        # may or may not carry them, so the fixtures do not.
        if k != "model.shared.weight" and v.data_ptr() == shared.data_ptr():
            continue
        if "embed_positions" in k:
            continue
        sd[k] = v.contiguous()
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})


def build_marian(ar, en, out_dir, flores_ar):
    src = train_spm(ar[:N_TRAIN], 500, model_type="unigram")
    tgt = train_spm(en[:N_TRAIN], 400, model_type="unigram")
    tmp = out_dir / "_spm"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "source.spm").write_bytes(src)
    (tmp / "target.spm").write_bytes(tgt)
    # A joint vocab as OPUS-MT ships it: </s> and <unk> first, then the pieces of both
    # models (source first), then <pad> last.
    vocab = {"</s>": 0, "<unk>": 1}
    for blob in (src, tgt):
        sp = spm.SentencePieceProcessor(model_proto=blob)
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            if sp.is_control(i) or sp.is_unknown(i):
                continue
            vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tok = MarianTokenizer(
        source_spm=str(tmp / "source.spm"),
        target_spm=str(tmp / "target.spm"),
        vocab=str(tmp / "vocab.json"),
        source_lang="ar",
        target_lang="en",
    )
    tok.save_pretrained(str(out_dir))
    shutil.rmtree(tmp)

    pad = vocab["<pad>"]
    config = MarianConfig(
        **marian_config_args(len(vocab), pad, 128, **SHAPE),
        forced_eos_token_id=0,
        # Untied: with random weights a tied output projection makes the model repeat its
        # previous token (the hidden state stays closest to its own input embedding). Real
        # OPUS-MT checkpoints tie; the loader falls back to `model.shared` for any
        # embedding or lm_head the checkpoint lacks.
        tie_word_embeddings=False,
        **NO_DROPOUT,
    )
    torch.manual_seed(1)
    model = MarianMTModel(config)
    scale_init(model, 0.3, seed=11, out_std=0.05)
    with torch.no_grad():
        g = torch.Generator().manual_seed(12)
        bias = 0.5 * torch.randn(model.final_logits_bias.shape, generator=g)
        # Make </s> a real competitor so hypotheses finish at different lengths.
        bias[0, 0] = EOS_BIAS
        model.final_logits_bias.copy_(bias)
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]],
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        max_length=MAX_LENGTH,
        num_beams=4,
        pad_token_id=pad,
    )
    config.save_pretrained(str(out_dir))
    model.generation_config.save_pretrained(str(out_dir))
    save_weights(model, out_dir)

    def encode(texts):
        return tok(texts, return_tensors="pt", padding=True)

    ref = record_model(model, tok, out_dir, encode, {})
    write_flores_ids(out_dir, [tok(line)["input_ids"] for line in flores_ar])
    return ref


def build_nllb(ar, en, out_dir, flores_ar):
    # Trained with fairseq's special-token order (<s> <pad> </s> <unk>) so spm ids equal
    # model ids, as NLLB's own vocabulary is laid out after its fairseq offset.
    blob = train_spm(ar[:N_TRAIN] + en[:N_TRAIN], 1200, model_type="bpe", bos_id=0, pad_id=1, eos_id=2, unk_id=3)
    tmp = out_dir / "_spm"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sentencepiece.bpe.model").write_bytes(blob)
    tok = NllbTokenizer.from_pretrained(
        str(tmp), src_lang="arb_Arab", tgt_lang="eng_Latn", extra_special_tokens=FAIRSEQ_LANGUAGE_CODES
    )
    tok.src_lang = "arb_Arab"
    shutil.rmtree(tmp)
    tok.save_pretrained(str(out_dir))
    eng = tok.convert_tokens_to_ids("eng_Latn")

    config = M2M100Config(
        vocab_size=len(tok),
        **encoder_decoder_shape(**SHAPE),
        activation_function="relu",
        max_position_embeddings=128,
        scale_embedding=True,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        **NO_DROPOUT,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        # Untied for the same reason as the Marian fixture.
        tie_word_embeddings=False,
        architectures=["M2M100ForConditionalGeneration"],
    )
    torch.manual_seed(2)
    model = M2M100ForConditionalGeneration(config)
    scale_init(model, 0.3, seed=21, out_std=0.05)
    with torch.no_grad():
        # No final_logits_bias in M2M100: push </s> up through its output row instead,
        # so hypotheses end at different lengths.
        model.lm_head.weight[2].mul_(NLLB_EOS_SCALE)
    model.generation_config = GenerationConfig(
        bos_token_id=0,
        decoder_start_token_id=2,
        eos_token_id=2,
        max_length=MAX_LENGTH,
        pad_token_id=1,
    )
    config.save_pretrained(str(out_dir))
    model.generation_config.save_pretrained(str(out_dir))
    save_weights(model, out_dir)

    def encode(texts):
        return tok(texts, return_tensors="pt", padding=True)

    ref = record_model(model, tok, out_dir, encode, {"forced_bos_token_id": eng})
    write_flores_ids(out_dir, [tok(line)["input_ids"] for line in flores_ar])
    return ref


def write_flores_ids(out_dir, ids):
    with open(out_dir / "flores_arb_ids.txt", "w") as f:
        for row in ids:
            f.write(" ".join(map(str, row)) + "\n")


def summarize(name, ref):
    print(f"== {name}")
    for case in ref["cases"][:3]:
        lens = [len(o["ids"][0]) for o in case["outputs"]]
        print(f"  {case['name']}: lengths {lens}")
        print(f"    {case['outputs'][0]['texts'][0][:80]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_flores = os.environ.get("TARJAMA_FLORES", str(REPO / "tests" / "data" / "flores200"))
    ap.add_argument("--flores", default=default_flores)
    ap.add_argument("--out", default=str(REPO / "crates/tarjama-seq2seq/tests/fixtures/seq2seq"))
    args = ap.parse_args()
    flores = Path(args.flores)
    ar_path, en_path = flores / "arb_Arab.devtest", flores / "eng_Latn.devtest"
    if not ar_path.exists():
        sys.exit(f"FLORES not found: {ar_path} (pass --flores or set TARJAMA_FLORES)")
    ar, en = read_lines(ar_path), read_lines(en_path)
    torch.set_num_threads(1)
    np.random.seed(0)
    out = Path(args.out)
    for sub, build in (("marian", build_marian), ("nllb", build_nllb)):
        d = out / sub
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        ref = build(ar, en, d, ar)
        summarize(sub, ref)


if __name__ == "__main__":
    main()
