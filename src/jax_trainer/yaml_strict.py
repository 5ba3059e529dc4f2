"""YAML read as the spec says: a mapping key given twice is an error, not "the last one wins".

PyYAML's ``safe_load`` silently keeps the last of two equal keys, so ``train_epochs: 1`` followed later by
``train_epochs: 50`` trains for 50 epochs without a word. PyYAML has no option to refuse them (its SafeLoader takes no
settings and the request, yaml/pyyaml#41, is open since 2016), hence this SafeLoader subclass.
"""

from __future__ import annotations

from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping holds the same key twice; ``key``, ``line`` and ``first_line`` (1-based) say where."""

    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(problem=f"duplicate key {key!r} at line {line} (first given at line {first_line})")

    def __str__(self) -> str:
        return self.problem


class UniqueKeyLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` for a key repeated within one mapping. Keys brought
    in by a merge (``<<: *base``) may still be overridden by the mapping's own keys, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own construct_mapping reports it
                continue
        return super().construct_mapping(node, deep=deep)


def load_unique(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, refusing duplicate mapping keys (:class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
