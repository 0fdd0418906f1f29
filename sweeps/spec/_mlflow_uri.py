"""What a tracking URI may say, checked without MLflow: the spec and `--tracking-uri` refuse a bad
one up front, in one line, before anything runs or is sent."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["experiment_problem", "tracking_uri_problem"]

# The stores MLflow's tracking client resolves by scheme (`+driver` suffixes allowed for databases).
_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks", "uc")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_MAX_URI = 2048
_MAX_EXPERIMENT = 500


def tracking_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a tracking URI, or None. A plain path is a local store, as in MLflow;
    a password in an http(s) URI would sit in a spec or a shell history, so it is refused."""
    if not uri.strip():
        return "must not be empty"
    if len(uri) > _MAX_URI:
        return f"must be at most {_MAX_URI} characters"
    if any(c.isspace() for c in uri):
        return "must not contain whitespace"
    match = _SCHEME.match(uri)
    if match is None:
        return None  # a local path (a one-letter "scheme" is a Windows drive)
    scheme = match.group(1).lower()
    if scheme.split("+")[0] not in _SCHEMES and scheme != "databricks-uc":
        known = ", ".join(f"{s}:" for s in _SCHEMES)
        return f"unknown scheme {scheme!r}; MLflow takes {known} or a local path"
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        if not parts.hostname:
            return "names no host"
        if parts.password is not None:
            return (
                "holds a password; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "(or MLFLOW_TRACKING_TOKEN) in the environment instead"
            )
    return None


def experiment_problem(name: str) -> str | None:
    if not name.strip():
        return "must not be empty"
    if len(name) > _MAX_EXPERIMENT:
        return f"must be at most {_MAX_EXPERIMENT} characters"
    return None
