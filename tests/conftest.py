"""Shared fixtures. Model-core fixtures: tiny random models built offline (see taxvlm.assets.tiny)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The fault suite's kill schedule comes from this seed (tests/test_faults.py); another seed gives
# other kill moments: `make faults FAULT_SEED=123`, `pytest -m faults --fault-seed 123`.
DEFAULT_FAULT_SEED = 29


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fault-seed", type=int, default=None,
                     help=f"seed of the fault suite's kill schedule (else $TAXVLM_FAULT_SEED, else {DEFAULT_FAULT_SEED})")


@pytest.fixture(scope="session")
def fault_seed(request: pytest.FixtureRequest) -> int:
    option = request.config.getoption("--fault-seed")
    if option is not None:
        return int(option)
    return int(os.environ.get("TAXVLM_FAULT_SEED") or DEFAULT_FAULT_SEED)

# initializer_range 0.2 (not HF's 0.02) so that a soft prompt can move the tiny LM's answer distribution.
TINY_LM = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "seed": 0,
    "initializer_range": 0.2,
}


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from taxvlm.assets.tiny import build_tiny_causal_lm

    out = tmp_path_factory.mktemp("models") / "tiny_llama"
    build_tiny_causal_lm(out, TINY_LM)
    return out


@pytest.fixture(scope="session")
def tiny_chat_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from taxvlm.assets.tiny import build_tiny_causal_lm

    out = tmp_path_factory.mktemp("models") / "tiny_llama_chat"
    build_tiny_causal_lm(out, {**TINY_LM, "chat_template": True})
    return out


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma-3 architecture with a 4-token sliding window, so cached prefixes cross the window."""
    from taxvlm.assets.tiny import build_tiny_causal_lm

    out = tmp_path_factory.mktemp("models") / "tiny_gemma3"
    build_tiny_causal_lm(out, {**TINY_LM, "architecture": "gemma3", "sliding_window": 4})
    return out


@pytest.fixture(scope="session")
def tiny_nobos_lm_dir(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with a tokenizer that adds no BOS (like SmolLM2's)."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("models") / "tiny_llama_nobos"
    shutil.copytree(tiny_lm_dir, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.save_pretrained(out)
    return out
