"""Named tensors of many members in one flat buffer: the storage every stack shares.

One buffer per kind of state (weights, gradients, each optimizer moment) keeps compaction and
re-padding to one copy per name, whichever network the members run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

__all__ = ["FlatLayout", "restack"]


@dataclass(frozen=True)
class FlatLayout:
    """Named tensors laid out one after another in one flat buffer, each a (K, *shape) block.

    One buffer per kind of state (weights, gradients, each optimizer moment) keeps compaction
    and re-padding to one copy per name; each block being contiguous over the members lets the
    batched matmuls write weight gradients straight into it.
    """

    entries: tuple[tuple[str, tuple[int, ...]], ...]

    @cached_property
    def _offsets(self) -> dict[str, tuple[int, int, tuple[int, ...]]]:
        offsets, start = {}, 0
        for name, shape in self.entries:
            numel = math.prod(shape)
            offsets[name] = (start, start + numel, shape)
            start += numel
        return offsets

    @property
    def size(self) -> int:
        """Elements per member."""
        return sum(math.prod(shape) for _, shape in self.entries)

    def zeros(self, k: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(k * self.size, device=device, dtype=dtype)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each named tensor as a contiguous (K, *shape) view into `flat` (writes go through)."""
        k = flat.numel() // max(self.size, 1)
        return {
            name: flat[k * start : k * stop].view(k, *shape)
            for name, (start, stop, shape) in self._offsets.items()
        }


def restack(
    parts: Sequence[tuple[torch.Tensor, FlatLayout, torch.Tensor]], layout: FlatLayout
) -> torch.Tensor:
    """Rows `index` of each (flat, old layout, index) part, re-laid out in `layout`.

    Used to drop members (compaction) and to join stacks; each tensor is cut or zero-padded
    to its new shape. Cutting only ever removes padding, which is zero by the invariant above.
    """
    first = parts[0][0]
    k = sum(int(index.numel()) for _, _, index in parts)
    out = layout.zeros(k, device=first.device, dtype=first.dtype)
    new = layout.views(out)
    row = 0
    for flat, old_layout, index in parts:
        old = old_layout.views(flat)
        n = int(index.numel())
        for name, shape in layout.entries:
            source = old[name].index_select(0, index)
            common = tuple(
                slice(0, min(a, b)) for a, b in zip(shape, source.shape[1:], strict=True)
            )
            new[name][(slice(row, row + n), *common)] = source[(slice(None), *common)]
        row += n
    return out
