"""What every rating-model kind shares: the directory schema, head lookup, OOD similarity."""

from __future__ import annotations

import numpy as np

from jaxalign.errors import DataError

SCHEMA = "jaxalign.reward/1"


class HeadsMixin:
    """Head lookup and the out-of-distribution similarity, shared by every kind."""

    @property
    def heads(self) -> list[str]:
        """Head names, e.g. toxicity[all], toxicity[gender=female]."""
        return list(self.meta["heads"])

    def _columns(self, heads) -> list[int]:
        """Column per requested head; an unknown head is a DataError listing those present."""
        heads = self.heads if heads is None else list(heads)
        missing = [h for h in heads if h not in self.heads]
        if missing:
            raise DataError(
                f"{self.path}: no head '{missing[0]}'; this model has {', '.join(self.heads)}"
            )
        return [self.heads.index(h) for h in heads]

    def similarity(self, responses, X=None) -> np.ndarray:
        """Largest cosine similarity of each response (or feature row of X) to any training text."""
        X = self.features.transform([str(r) for r in responses]) if X is None else X
        return self.features.similarity(X, self.train_rows)

    def out_of_distribution(self, responses) -> np.ndarray:
        """True where a response is less similar to the training texts than reward.ood_threshold."""
        return self.similarity(responses) < float(self.meta["config"]["ood_threshold"])
