"""The one base class for everything a user can cause; the CLI turns it into lines on stderr."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MISSING", "CaviarError", "Problem", "RunError", "SpecError"]


class _Missing:
    """Stands for a required field that was not given, so messages say so instead of None."""

    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a dotted field path), what value, and why."""

    field: str
    value: object
    message: str

    def __str__(self) -> str:
        where = self.field or "spec"
        return f"{where}: {self.message} (got {self.value!r})"


class CaviarError(Exception):
    """A user error: exit code 2, one line per problem, nothing written."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("; ".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [f"error: {prefix}{p}" for p in self.problems]


class SpecError(CaviarError):
    """A sweep spec that cannot be run as written."""


class RunError(CaviarError):
    """The input was fine but the sweep could not run (Ray unreachable, every trial failed)."""

    exit_code = 1
