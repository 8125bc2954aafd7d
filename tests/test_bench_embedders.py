"""bench/embedders.py: the embedding rankers bench/relevance.py measures beside TF-IDF.

Their packages are not in the test extra (none was worth shipping): the tests of a model
skip when its package is absent; what runs everywhere is the joining and the report of what
is missing.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bench.embedders import Joined, WordLlamaRanker, available
from digest.select.similar import TfidfRanker, text_of

TEXTS = [
    text_of("Graph neural networks for molecules", "message passing over atoms and bonds"),
    text_of("Message passing on molecular graphs", "node embeddings of atoms and bonds"),
    text_of("Diffusion models for images", "denoising score matching for image synthesis"),
    text_of("Policy gradients for robots", "reward shaping for legged locomotion"),
]


def test_every_embedder_either_runs_or_says_what_to_install() -> None:
    makers, missing = available()
    assert set(makers) | set(missing) == {"wordllama", "minilm"}
    assert not set(makers) & set(missing)
    for reason in missing.values():
        assert "not installed: pip install" in reason


def test_joined_similarity_is_the_shared_mix_of_both_rankers() -> None:
    first = TfidfRanker.fit(TEXTS)
    second = TfidfRanker.fit(list(reversed(TEXTS)), dimensions=2)
    joined = Joined(first, second, 0.7)
    vectors = joined.vectors(TEXTS)
    assert vectors.shape == (len(TEXTS), first.dimensions + second.dimensions)
    a, b = first.vectors(TEXTS), second.vectors(TEXTS)
    expected = 0.7 * (a @ a.T) + 0.3 * (b @ b.T)
    assert np.allclose(vectors @ vectors.T, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("wordllama") is None,
    reason="wordllama is not installed (pip install wordllama): bench-only embedder",
)
def test_wordllama_puts_the_two_graph_papers_together() -> None:
    ranker = WordLlamaRanker(TEXTS * 3)
    vectors = ranker.vectors(TEXTS)
    assert vectors.shape == (len(TEXTS), 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar = vectors @ vectors.T
    assert similar[0, 1] > similar[0, 2]
    assert similar[0, 1] > similar[0, 3]
    day = ranker.day([])
    assert day.vectors.shape == (0, 256)
