"""The learner's numbers as numpy arrays: examples as one sparse matrix, weights as one dense one.

numpy rather than more pure Python: it is the numeric library every scientific Python stack
builds on (mature, BSD-licensed, binary wheels for every platform, already locked for this
project), and a training step becomes a few vectorised gathers and sums instead of a Python
loop per feature per example. No sparse-matrix library is needed: the few operations the
learner does (gather rows, sum per example, scatter gradients) are written here on plain
arrays in CSR form.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from local_openai.learner.model import SoftmaxModel


@dataclass(frozen=True)
class SparseExamples:
    """Examples in CSR form: row i has the feature columns `columns[indptr[i]:indptr[i + 1]]`.

    Each of a row's features weighs `scale[i]` (1/sqrt(its number of features)); `labels[i]` is
    the index of its reply (-1: a reply the model cannot know).
    """

    indptr: np.ndarray
    columns: np.ndarray
    scale: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(columns of the rows' features, one after another; start of each row in them)."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        offsets = np.cumsum(lengths) - lengths
        total = int(lengths.sum())
        # Position k of the result belongs to row r: take columns[starts[r] + (k - offsets[r])].
        positions = np.arange(total) + np.repeat(starts - offsets, lengths)
        return self.columns[positions], offsets


@dataclass(frozen=True)
class FlatFeatures:
    """The feature ids of many examples, one after another, and how many each example has."""

    ids: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, feature_sets: Sequence[set[int]]) -> FlatFeatures:
        """Flatten once: the vocabulary and the examples are both built from this."""
        lengths = np.fromiter(map(len, feature_sets), dtype=np.int64, count=len(feature_sets))
        ids = np.fromiter(itertools.chain.from_iterable(feature_sets), dtype=np.int64, count=int(lengths.sum()))
        return cls(ids, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def document_frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """Every feature id present, sorted, and in how many examples it is (ids are unique per example)."""
        return np.unique(self.ids, return_counts=True)


def build_examples(features: FlatFeatures, labels: Sequence[int], vocabulary: np.ndarray) -> SparseExamples:
    """Examples as CSR rows over the columns of `vocabulary` (sorted ids); unknown features are dropped."""
    n = len(features)
    rows = np.repeat(np.arange(n), features.lengths)
    columns = np.searchsorted(vocabulary, features.ids)
    if len(vocabulary):
        known = vocabulary[np.minimum(columns, len(vocabulary) - 1)] == features.ids
    else:
        known = np.zeros(len(features.ids), dtype=bool)
    rows, columns = rows[known], columns[known]
    counts = np.bincount(rows, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    scale = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return SparseExamples(indptr, columns.astype(np.int64), scale, np.asarray(labels, dtype=np.int64).reshape(n))


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities, shifted by each row's maximum so exp() never overflows."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass
class DenseWeights:
    """Bias and one row of per-reply weights for every vocabulary feature, while training."""

    vocabulary: np.ndarray  # sorted feature ids; row i of `matrix` belongs to vocabulary[i]
    matrix: np.ndarray  # (features, replies)
    bias: np.ndarray  # (replies,)
    labels: list[str]
    bigrams: bool

    @classmethod
    def start(
        cls, vocabulary: np.ndarray, labels: list[str], bigrams: bool, initial: SoftmaxModel | None
    ) -> DenseWeights:
        """Zero weights, or `initial`'s with a zero column for each reply it did not know."""
        matrix = np.zeros((len(vocabulary), len(labels)))
        bias = np.zeros(len(labels))
        if initial is not None:
            known = len(initial.labels)
            bias[:known] = initial.bias
            if initial.weights:
                features = np.fromiter(initial.weights, dtype=np.int64, count=len(initial.weights))
                matrix[np.searchsorted(vocabulary, features), :known] = np.array(list(initial.weights.values()))
        return cls(vocabulary, matrix, bias, labels, bigrams)

    def logits(self, examples: SparseExamples, rows: np.ndarray) -> np.ndarray:
        """Raw scores of the replies for `rows`: bias + scale * (sum of the rows' feature weights)."""
        columns, offsets = examples.gather(rows)
        sums = np.zeros((len(rows), self.matrix.shape[1]))
        nonempty = examples.indptr[rows + 1] > examples.indptr[rows]
        if len(columns):
            sums[nonempty] = np.add.reduceat(self.matrix[columns], offsets[nonempty], axis=0)
        return self.bias + examples.scale[rows, None] * sums

    def descend(self, examples: SparseExamples, rows: np.ndarray, residual: np.ndarray, factor: float) -> None:
        """Add `factor` times the gradient of the batch's loss (residual = probabilities - truth)."""
        self.bias += factor * residual.sum(axis=0)
        columns, offsets = examples.gather(rows)
        if not len(columns):
            return
        lengths = np.diff(np.append(offsets, len(columns)))
        per_feature = np.repeat(residual * examples.scale[rows, None], lengths, axis=0)
        # Sum the contributions of a feature shared by several examples, then update each row once.
        order = np.argsort(columns, kind="stable")
        ordered = columns[order]
        firsts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        gradient = np.add.reduceat(per_feature[order], firsts, axis=0)
        self.matrix[ordered[firsts]] += factor * gradient

    def model(self) -> SoftmaxModel:
        """An independent `SoftmaxModel` of the current weights (checkpoints do not move afterwards)."""
        rows = self.matrix.tolist()
        weights = {int(feature): row for feature, row in zip(self.vocabulary.tolist(), rows)}
        return SoftmaxModel(labels=list(self.labels), bias=self.bias.tolist(), weights=weights, bigrams=self.bigrams)
