"""Quality of an embedding: k-nearest-neighbour accuracy, the t-SimCNE papers' measure.

Protocol (../shared/data/README.md): stratified 90/10 split with seed 0, a
15-NN classifier trained on the 90 % and scored on the 10 %, in percent.
Labels are used for this evaluation only, never for training.
"""

from __future__ import annotations

import numpy as np


def knn_accuracy(embedding: np.ndarray, labels: np.ndarray, k: int = 15, test_size: float = 0.1, random_state: int = 0) -> float:
    """Percentage of held-out tiles whose k nearest neighbours vote for their true label."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    embedding = np.asarray(embedding)
    labels = np.asarray(labels)
    if embedding.shape[0] != labels.shape[0]:
        raise ValueError(f"{embedding.shape[0]} embedded tiles but {labels.shape[0]} labels.")
    x_train, x_test, y_train, y_test = train_test_split(
        embedding, labels, test_size=test_size, stratify=labels, random_state=random_state
    )
    clf = KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train)
    return 100.0 * float(clf.score(x_test, y_test))
