"""Quality of an embedding: k-nearest-neighbour accuracy, the t-SimCNE papers' measure.

Protocol (../shared/data/README.md): stratified 90/10 split with seed 0, a
15-NN classifier trained on the 90 % and scored on the 10 %, in percent.
Labels are used for this evaluation only, never for training.
"""

from __future__ import annotations

import math

import numpy as np


class EvaluationError(ValueError):
    """Labels with which the k-NN accuracy cannot be computed (the map itself is fine)."""


def why_not_scorable(labels: np.ndarray, k: int = 15, test_size: float = 0.1) -> str | None:
    """Why the k-NN accuracy of these labels cannot be computed, or None when it can.

    Parameters
    ----------
    labels : np.ndarray
        One label per tile.
    k : int
        Neighbours of the classifier.
    test_size : float
        Fraction of tiles held out, stratified by label.

    Returns
    -------
    str or None
        A one-sentence reason, or None.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if labels.ndim != 1:
        return f"the labels must be one value per tile, got an array of shape {labels.shape}"
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        return f"{int((~np.isfinite(labels)).sum())} label(s) are NaN or infinite"
    if labels.dtype.kind not in "biufUSO":
        return f"labels of dtype {labels.dtype} cannot be compared"
    try:
        classes, counts = np.unique(labels, return_counts=True)
    except TypeError:  # an object array mixing, e.g., strings and None
        return "the labels mix values that cannot be compared (e.g. text and missing values)"
    if len(classes) < 2:
        return "all tiles have the same label"
    if counts.min() < 2:
        return f"{int((counts < 2).sum())} class(es) have a single tile; a stratified split needs 2 per class"
    n_test = math.ceil(test_size * n)
    if n_test < len(classes) or n - n_test < len(classes):
        return (
            f"{len(classes)} classes are too many for {n} tiles: a stratified {test_size:.0%} split "
            "needs a held-out tile of every class"
        )
    if n - n_test < k:
        return f"{n - n_test} training tiles are fewer than the {k} neighbours asked for"
    return None


def knn_accuracy(
    embedding: np.ndarray,
    labels: np.ndarray,
    k: int = 15,
    test_size: float = 0.1,
    random_state: int = 0,
) -> float:
    """Percentage of held-out tiles whose k nearest neighbours vote for their true label.

    The score t-SimCNE (Böhm, Berens & Kobak, ICLR 2023) reports for its maps: a
    stratified split holds out ``test_size`` of the tiles, and each held-out tile is
    classified by a majority vote of its ``k`` nearest training tiles in the map.
    The labels are used for this score only, never for training.

    Parameters
    ----------
    embedding : numpy.ndarray
        The map, shape ``(N, D)`` (or any features of the tiles).
    labels : numpy.ndarray
        One label per tile, shape ``(N,)``.
    k : int
        Neighbours that vote (15 in the paper).
    test_size : float
        Fraction of the tiles held out.
    random_state : int
        Seed of the split.

    Returns
    -------
    float
        The accuracy in percent, 0 to 100.

    Raises
    ------
    EvaluationError
        When the labels do not allow the score (see ``why_not_scorable``).
    """
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    embedding = np.asarray(embedding)
    labels = np.asarray(labels)
    if embedding.shape[0] != labels.shape[0]:
        raise EvaluationError(f"{embedding.shape[0]} embedded tiles but {labels.shape[0]} labels.")
    if embedding.ndim != 2 or not np.isfinite(embedding).all():
        raise EvaluationError("The embedding must be a finite (N, D) array.")
    reason = why_not_scorable(labels, k, test_size)
    if reason is not None:
        raise EvaluationError(f"The {k}-NN accuracy cannot be computed: {reason}.")
    x_train, x_test, y_train, y_test = train_test_split(
        embedding, labels, test_size=test_size, stratify=labels, random_state=random_state
    )
    clf = KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train)
    return 100.0 * float(clf.score(x_test, y_test))
