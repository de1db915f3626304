"""A GGUF model file (llama.cpp's format, as model packages ship it) converted once into an ordinary
HF checkpoint directory in the cache, keyed by the file's hash: de-quantizing takes tens of seconds,
loading the converted checkpoint a fraction of one."""

from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

from ecosystem.bases.cache import build_once, cache_root
from ecosystem.config import ConfigError

KEY = "world.model_path"


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def checkpoint_directory(path: Path) -> Path:
    """`path` itself when it is a checkpoint directory; for a GGUF file, its converted checkpoint
    (converted first if missing)."""
    if not is_gguf(path):
        return path
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"{KEY}: reading a GGUF file needs the gguf package: pip install gguf")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as error:
        raise ConfigError(f"{KEY}: cannot read {path}: {error.strerror}") from None
    return build_once(cache_root() / f"gguf-{digest}", lambda out: _convert(path, out))


def _convert(path: Path, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    architecture = _architecture(path)
    supported = sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})  # those two are not architectures
    if architecture not in supported:
        raise ConfigError(
            f"{KEY}: {path} holds a '{architecture}' model, which transformers cannot load from GGUF "
            f"(it can: {', '.join(supported)}); convert it to an HF checkpoint directory"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        raise ConfigError(
            f"{KEY}: cannot convert {path} (a '{architecture}' GGUF file with missing or unexpected contents); "
            "convert it to an HF checkpoint directory"
        ) from None
    # The weights are de-quantized: saved as ordinary weights, with no quantization left to declare.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"source": str(path), "architecture": architecture, "seconds": round(time.perf_counter() - started, 2)}


def _architecture(path: Path) -> str:
    from gguf import GGUFReader  # an optional dependency, needed only here

    try:
        field = GGUFReader(path).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except (OSError, ValueError, KeyError, IndexError):
        raise ConfigError(f"{KEY}: {path} is not a readable GGUF file (missing or corrupt)") from None
