"""The error a user can cause in the results layer: a missing or unreadable results directory."""

from __future__ import annotations

__all__ = ["ResultsError"]


class ResultsError(ValueError):
    """Carries the offending path or column and its value, so the CLI can print one line."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message} (got {value!r})")
