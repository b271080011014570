"""YAML with bounds checked before anything is built: a size limit and an alias-count limit.

``yaml.safe_load`` expands aliases as it constructs, so a few hundred bytes of nested aliases (a "billion
laughs" document) grow to gigabytes once anything walks them. :func:`load_bounded` refuses a document
over :data:`MAX_BYTES`, with more than :data:`MAX_ALIASES` aliases (counted on the parser's event stream),
or whose expanded size would exceed :data:`MAX_NODES` nodes (computed on the composed node graph, where an
alias is a shared node, so nothing is expanded).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 200_000


class YamlLimitError(ValueError):
    """A YAML document is over a size or alias limit."""


def load_bounded(text: str, source: str, max_bytes: int = MAX_BYTES, max_aliases: int = MAX_ALIASES) -> Any:
    """``yaml.safe_load(text)`` after checking the size and the number of aliases.

    Raises:
        YamlLimitError: Over a limit (nothing was expanded).
        yaml.YAMLError: Not valid YAML.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise YamlLimitError(f"{source}: {size} bytes is over the limit of {max_bytes} bytes for a YAML file")
    aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > max_aliases:
                raise YamlLimitError(f"{source}: more than {max_aliases} YAML aliases (*name); refusing to "
                                     "expand it")
    if aliases:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            nodes = _expanded_nodes(root, {}) if root is not None else 0
        except RecursionError:
            raise YamlLimitError(f"{source}: YAML nested too deeply") from None
        if nodes > MAX_NODES:
            raise YamlLimitError(f"{source}: YAML aliases expand to more than {MAX_NODES} values "
                                 f"({nodes}); refusing to expand it")
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise YamlLimitError(f"{source}: YAML nested too deeply") from None


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Values in ``node`` once every alias is expanded (shared nodes counted once per use, computed once)."""
    key = id(node)
    if key in memo:
        return memo[key]
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_nodes(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    memo[key] = total
    return total
