"""Read YAML that may be hostile: policy files and gateway configs come from outside the code.

``yaml.safe_load`` forbids arbitrary objects but not cost: a 700-byte "billion laughs" file of
nested aliases expands to billions of nodes (and every ``repr`` of it in an error message expands
again), a file of ten thousand ``[`` overflows the composer's recursion, and a 5,000-digit integer
raises a bare ``ValueError``. :func:`load_yaml` first walks the *event stream* (the parser is a
state machine, so this costs no recursion and no expansion), counting nodes as they would be after
alias expansion, the nesting depth (an alias counts with the depth of what it points to) and
scalar sizes; only a document inside every bound is then constructed. Any failure is a
:class:`YamlError` that names the file and the bound, raised in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from router_ml.errors import RouterError

MAX_BYTES = 1 << 20
"""Largest YAML text accepted (1 MiB): configs and policies are a few kilobytes."""
MAX_NODES = 100_000
"""Largest node count after alias expansion."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences, aliases included."""
MAX_SCALAR_CHARS = 65_536
"""Longest single scalar (a regex or a model name is far shorter)."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(RouterError, ValueError):
    """A YAML text is malformed or exceeds a size, depth or expansion bound.

    ``source`` names the file (or ``<text>``), ``problem`` says what is wrong with it.
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


def load_yaml(
    text: str | bytes,
    source: str = "<yaml>",
    *,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    max_scalar_chars: int = MAX_SCALAR_CHARS,
) -> Any:
    """Parse one YAML document into plain Python data, refusing anything over the bounds."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(source, f"not valid UTF-8 at byte {exc.start}") from exc
    if len(text) > max_bytes:
        raise YamlError(source, f"{len(text)} characters exceed the limit of {max_bytes}")
    try:
        _check_bounds(text, source, max_nodes, max_depth, max_scalar_chars)
        return yaml.load(text, Loader=_Loader)  # CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:
        raise YamlError(source, f"invalid YAML: {_short(exc)}") from exc
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. int("9" * 5000)
        raise YamlError(source, f"invalid YAML value: {_short(exc)}") from exc


def load_yaml_file(path: str | os.PathLike[str], **bounds: int) -> Any:
    """``load_yaml`` of a file, checking its size before reading it whole."""
    path = Path(path)
    max_bytes = bounds.get("max_bytes", MAX_BYTES)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise YamlError(str(path), f"{size} bytes exceed the limit of {max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise YamlError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    return load_yaml(data, str(path), **bounds)


def _check_bounds(
    text: str, source: str, max_nodes: int, max_depth: int, max_scalar_chars: int
) -> None:
    # Expanded size and depth of every anchored node, so an alias costs what it expands to.
    anchor_size: dict[str, int] = {}
    anchor_depth: dict[str, int] = {}
    # Per open collection: its anchor, the node count when it opened, its own subtree depth.
    open_nodes: list[list[Any]] = []
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            total += 1
            open_nodes.append([event.anchor, total - 1, 1])
            if len(open_nodes) > max_depth:
                raise YamlError(source, f"nested deeper than {max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start, depth = open_nodes.pop()
            if open_nodes:
                open_nodes[-1][2] = max(open_nodes[-1][2], depth + 1)
            if anchor is not None:
                anchor_size[anchor] = total - start
                anchor_depth[anchor] = depth
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if len(event.value) > max_scalar_chars:
                raise YamlError(
                    source,
                    f"a scalar of {len(event.value)} characters exceeds the limit of "
                    f"{max_scalar_chars}",
                )
            if event.anchor is not None:
                anchor_size[event.anchor] = 1
                anchor_depth[event.anchor] = 0
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchor_size:  # undefined, or its collection is still open
                if any(node[0] == event.anchor for node in open_nodes):
                    raise YamlError(
                        source, f"alias *{_clip(event.anchor)} refers to its own ancestor"
                    )
                continue  # undefined: the composer reports it with its position
            total += anchor_size[event.anchor]
            depth = anchor_depth[event.anchor]
            if len(open_nodes) + depth > max_depth:
                raise YamlError(
                    source, f"alias *{_clip(event.anchor)} nests deeper than {max_depth} levels"
                )
            if open_nodes:
                open_nodes[-1][2] = max(open_nodes[-1][2], depth + 1)
        else:
            continue
        if total > max_nodes:
            raise YamlError(
                source,
                f"more than {max_nodes} nodes after alias expansion "
                "(an alias bomb or a file far larger than a config)",
            )


def _clip(text: str | None, limit: int = 40) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception message cut to ``limit`` characters: the YAML parser quotes the input."""
    return _clip(str(exc), limit)
