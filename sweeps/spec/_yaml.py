"""A YAML loader for specs that refuses what a spec never needs and an attacker might send.

Safe loading alone still accepts aliases (a few lines of `&a [*b, *b, ...]` expand to billions
of nodes once validation walks them) and silently keeps the last of duplicate keys (a typo
that changes a sweep without a word). Both are errors here, as is a file too large to be a spec.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

__all__ = ["MAX_SPEC_BYTES", "load_yaml"]

MAX_SPEC_BYTES = 1024 * 1024


class _SpecLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a spec", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                raise ConstructorError(None, None, "a key must be a scalar", key_node.start_mark)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError with a position on anything refused."""
    return yaml.load(text, Loader=_SpecLoader)
