"""The one way dltool reads and writes YAML: safe loading within budgets that stop an alias bomb
or a deep nest, and refusing a key given twice (YAML would keep the last without a word)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def dump_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=None)


# A config, a search space or a run's config.yaml holds a few hundred values and nests a few
# levels; these budgets leave ample room and stop an alias bomb or a deep nest while loading.
MAX_YAML_NODES = 10_000  # values as the aliases expand them
MAX_YAML_DEPTH = 64


class YamlLimitError(yaml.YAMLError):
    """A YAML document larger or deeper than any dltool file needs."""


class YamlRepeatedKeyError(yaml.YAMLError):
    """A mapping that gives one key twice, of which YAML would keep the last without a word."""


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` within the budgets above: the one way dltool reads YAML."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """Counts nodes as composed, an alias by the size of what it repeats, so that nine
    aliases of nine aliases (billion laughs) are refused before anything expands them."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._sizes: dict[int, int] = {}  # id(node) -> its size with aliases expanded
        self._nodes = self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = self.anchors.get(self.peek_event().anchor)
            if node is not None:
                if id(node) not in self._sizes:
                    raise YamlLimitError("an alias refers to the value that holds it (a recursive value)")
                self._count(self._sizes[id(node)])
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise YamlLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels")
        node = super().compose_node(parent, index)
        self._depth -= 1
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        children = children if isinstance(node, yaml.CollectionNode) else []
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        self._count(1)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        _refuse_repeated_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _count(self, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > MAX_YAML_NODES:
            raise YamlLimitError(f"more than {MAX_YAML_NODES} values once its aliases expand (an alias bomb?)")


def _refuse_repeated_keys(node: yaml.MappingNode) -> None:
    """A key given twice in one mapping; merge keys (``<<``) may still be overridden."""
    first_lines: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if key.value in first_lines:
            raise YamlRepeatedKeyError(
                f"line {line}: {key.value!r} is given twice (first on line {first_lines[key.value]}); "
                "YAML would keep only the last: remove one"
            )
        first_lines[key.value] = line
