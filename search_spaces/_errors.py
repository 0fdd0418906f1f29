"""The one error type a user can cause in a search space, and the problems it carries.

Validation collects every problem before raising, so a user fixing a spec sees all of its
mistakes at once instead of one per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a space: where (a dotted path), what was found, what was expected."""

    field: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""  # "" is the whole space, nothing to name
        return f"{where}{self.message} (got {self.value!r})"


class SearchSpaceError(ValueError):
    """Everything a user can get wrong in a space; carries every problem found, not the first."""

    problems: tuple[Problem, ...]

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("SearchSpaceError needs at least one problem")
        super().__init__("; ".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[SearchSpaceError], tuple[tuple[Problem, ...]]]:
        # The default reduction would call __init__ with the joined message; Ray pickles exceptions
        # raised in workers, so they must survive the trip with their problems intact.
        return (type(self), (self.problems,))


def prefixed(prefix: str, problems: Iterable[Problem]) -> list[Problem]:
    """The same problems seen from one level up, e.g. field "low" of parameter "lr" -> "lr.low"."""
    return [replace(p, field=f"{prefix}.{p.field}" if p.field else prefix) for p in problems]
