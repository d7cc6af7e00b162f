"""The report's view of quality scores: every value per score column, and the worst rows of each.

Fed one index part at a time (`add`), with bounded memory: 4 bytes per row and column for the
distributions, and a heap of the `worst` rows per column. "Worst" is the low end of every score
except the error rates (wer, cer), where it is the high end. Rows whose value is null (not
scored, e.g. speaker similarity without a reference) are counted, never ranked.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.stages.score_metrics import SCORE_COLUMNS

HIGHER_IS_WORSE = frozenset({"wer", "cer"})
LABELS = {
    "dnsmos_sig": "DNSMOS signal (1-5)", "dnsmos_bak": "DNSMOS background (1-5)", "dnsmos_ovrl": "DNSMOS overall (1-5)",
    "speech_ratio": "speech ratio (VAD)", "bandwidth_hz": "bandwidth (Hz)", "speaker_sim": "speaker similarity to the reference",
    "speaker_sim_source": "speaker similarity to the VC source", "wer": "word error rate", "cer": "character error rate",
}  # fmt: skip


@dataclass
class ScoreStats:
    """Distributions and worst rows of the score columns an index has."""

    worst: int = 3
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    unscored: dict[str, int] = field(default_factory=dict)
    _heaps: dict[str, list[tuple[float, int, dict[str, Any]]]] = field(default_factory=dict)
    _seen: int = 0

    @staticmethod
    def columns_in(names: set[str]) -> list[str]:
        return [c for c in SCORE_COLUMNS if c in names]

    def add(self, table: Any, keep: dict[str, list[Any]]) -> None:
        """One index part: `table` holds the score columns, `keep` the row fields a card shows."""
        for column in self.columns_in(set(table.column_names)):
            raw = table.column(column).to_pylist()
            finite = [v for v in raw if v is not None and math.isfinite(v)]
            if not finite and column not in self.values:
                self.unscored[column] = self.unscored.get(column, 0) + len(raw)
                continue
            self.values.setdefault(column, []).append(np.asarray(finite, dtype=np.float32))
            self.unscored[column] = self.unscored.get(column, 0) + len(raw) - len(finite)
            heap = self._heaps.setdefault(column, [])
            sign = 1.0 if column in HIGHER_IS_WORSE else -1.0  # the heap's smallest is the least bad kept
            order = keep.get("row") or range(self._seen, self._seen + table.num_rows)  # ties: the earlier manifest row
            for i, value in enumerate(raw):
                if value is None or not math.isfinite(value):
                    continue
                entry = (sign * value, -order[i], {**{c: v[i] for c, v in keep.items()}, "value": value})
                if len(heap) < self.worst:
                    heapq.heappush(heap, entry)
                elif entry[:2] > heap[0][:2]:
                    heapq.heapreplace(heap, entry)
        self._seen += table.num_rows

    def distributions(self) -> dict[str, np.ndarray]:
        """Column -> every finite value, for the columns that have any."""
        return {c: np.concatenate(chunks) for c, chunks in self.values.items() if sum(x.size for x in chunks)}

    def worst_rows(self, column: str) -> list[dict[str, Any]]:
        """The worst rows of `column`, worst first (ties: the earlier manifest row first)."""
        return [row for _, _, row in sorted(self._heaps.get(column, []), reverse=True)]
