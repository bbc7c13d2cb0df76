"""What several scripts here share: where tarjama keeps its models, where FLORES-200 is,
and the shape of the encoder-decoder models the seq2seq scripts build.

Not a script: its siblings import it (`from tarjama_scripts import ...`), which works when
they are run as documented, `python3 scripts/NAME.py` (a script's own folder is on
Python's path). Standard library only, so that importing it needs no package.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """tarjama's paths::models_dir(): $TARJAMA_HOME/models, else <cache dir>/tarjama/models."""
    home = os.environ.get("TARJAMA_HOME")
    if home:
        return Path(home) / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tarjama" / "models"


def flores_dir(arg) -> Path:
    """The FLORES-200 folder: `arg` (a --flores option), else $TARJAMA_FLORES, else
    tests/data/flores200 in the repository."""
    return Path(arg or os.environ.get("TARJAMA_FLORES") or ROOT / "tests" / "data" / "flores200")


def find_model(arg: str) -> Path:
    """The model file a --model option names: a path, else a name in models_dir(); exits
    with an error when it is neither."""
    model = Path(arg)
    if not model.is_file():
        model = models_dir() / arg
    if not model.is_file():
        sys.exit(f"error: model {arg} not found (looked in {models_dir()})")
    return model


def encoder_decoder_shape(d_model: int, layers: int, heads: int, ffn: int) -> dict:
    """The size arguments of a transformers encoder-decoder config (MarianConfig,
    M2M100Config): width, and as many layers, heads and feed-forward units in the encoder
    as in the decoder."""
    return dict(
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
    )


def marian_config_args(vocab_size: int, pad: int, max_positions: int, **shape) -> dict:
    """MarianConfig's arguments for an OPUS-MT-like model of encoder_decoder_shape(**shape):
    one vocabulary of `vocab_size` for both sides with </s> at 0 and <pad> (also the
    decoder's start) at `pad`, swish, scaled embeddings shared by encoder and decoder.
    Weight tying, dropout and generation settings are the caller's."""
    return dict(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        **encoder_decoder_shape(**shape),
        activation_function="swish",
        max_position_embeddings=max_positions,
        pad_token_id=pad,
        eos_token_id=0,
        decoder_start_token_id=pad,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        architectures=["MarianMTModel"],
    )
