"""The Prometheus text exposition format 0.0.4, written here (no
``prometheus_client`` at run time).  This module knows the format only;
which figures become which families is :meth:`Metrics.to_prometheus`.

Counters end in ``_total``; histograms have ``_bucket{le=...}``
(cumulative), ``_sum`` and ``_count``.  A histogram is anything with
``bounds``, ``counts``, ``sum`` and ``count`` (:class:`Histogram`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import accumulate
from typing import Any


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return "+Inf" if x == math.inf else repr(float(x))


_LE: dict[tuple[float, ...], list[str]] = {}


class Exposition:
    """Metric families, appended one by one, then :meth:`text`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.out: list[str] = []

    def _family(self, name: str, kind: str, help: str) -> str:
        name = self.prefix + name
        self.out.append(f"# HELP {name} {help}")
        self.out.append(f"# TYPE {name} {kind}")
        return name

    def gauge(self, name: str, value: float, help: str) -> None:
        name = self._family(name, "gauge", help)
        self.out.append(f"{name} {_num(value)}")

    def counter(self, name: str, value: float, help: str) -> None:
        name = self._family(name, "counter", help)
        self.out.append(f"{name} {_num(value)}")

    def counters(self, name: str, label: str, values: Mapping[str, float], help: str) -> None:
        """One counter family with a series per ``label`` value (sorted)."""
        name = self._family(name, "counter", help)
        for key, n in sorted(values.items()):
            self.out.append(f'{name}{{{label}="{_label(key)}"}} {_num(n)}')

    def histogram(self, name: str, h: Any, help: str, label: str = "") -> None:
        """``h``: one histogram, or a mapping label value -> histogram."""
        name = self._family(name, "histogram", help)
        if isinstance(h, Mapping):
            for key, sub in h.items():
                self._hist(name, sub, f'{label}="{_label(key)}"')
        else:
            self._hist(name, h)

    def _hist(self, name: str, h: Any, label: str = "") -> None:
        les = _LE.get(h.bounds)
        if les is None:  # the bucket labels of a set of bounds, formatted once
            les = _LE[h.bounds] = [f'le="{_num(b)}"' for b in (*h.bounds, math.inf)]
        head = f"{name}_bucket{{{label}{',' if label else ''}"
        self.out.extend(f"{head}{le}}} {n}" for le, n in zip(les, accumulate(h.counts)))
        lab = f"{{{label}}}" if label else ""
        self.out.append(f"{name}_sum{lab} {_num(h.sum)}")
        self.out.append(f"{name}_count{lab} {h.count}")

    def text(self) -> str:
        return "\n".join(self.out) + "\n"
