"""Does Bumblebee run this model natively? The answer ``bridge native-check`` gives.

Bumblebee loads a model only when the class named by ``config.json``'s
``architectures`` is in its class map. That map, with the module, the
architecture atom and the servings that accept it, is kept as data in
``protocols/bumblebee_architectures.tsv``; the Elixir shim embeds the same file
at compile time, so both sides give the same answer.

Two answers are possible:

* **native**: the module to load it with, its architecture atom, and the
  Bumblebee serving constructors to switch to;
* **not yet**: the class name, and when Bumblebee implements the model type
  with other heads, that module and the heads it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the table lives in a source checkout (the package is installed editable).
TABLE_PATH = Path(__file__).resolve().parent.parent / "protocols" / "bumblebee_architectures.tsv"

_COLUMNS = ["hf_architecture", "module", "architecture", "servings"]
# Class-name endings that name a head rather than a model family; what is left
# is the family (``XLMRobertaForMaskedLM`` -> ``XLMRoberta``).
_HEAD_SUFFIX = re.compile(r"(For[A-Za-z]+|LMHeadModel|EncoderModel|Model|Backbone)$")


@dataclass(frozen=True)
class Entry:
    """One row of the table: a class Bumblebee loads natively."""

    hf_architecture: str
    module: str
    architecture: str
    servings: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Bumblebee's class map at one version."""

    version: str
    commit: str
    entries: dict[str, Entry]

    def family_modules(self) -> dict[str, str]:
        """Normalized model family (``xlmroberta``) -> Bumblebee module, from the class names."""
        families: dict[str, str] = {}
        for entry in self.entries.values():
            families.setdefault(_family_key(entry.hf_architecture), entry.module)
        return families

    def heads(self, module: str) -> dict[str, tuple[str, ...]]:
        """The architectures a module is listed with, each with its servings."""
        heads: dict[str, tuple[str, ...]] = {}
        for entry in self.entries.values():
            if entry.module == module:
                heads.setdefault(entry.architecture, entry.servings)
        return dict(sorted(heads.items()))


@dataclass(frozen=True)
class Answer:
    """The native check's verdict on one model."""

    native: bool
    hf_architecture: str | None
    model_type: str | None
    bumblebee_version: str
    module: str | None = None
    architecture: str | None = None
    servings: tuple[str, ...] = ()
    load_options: dict[str, str] = field(default_factory=dict)
    closest_module: str | None = None
    closest_heads: tuple[str, ...] = ()
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer as plain JSON values; keys not relevant to the verdict are left out."""
        data: dict[str, Any] = {
            "native": self.native,
            "hf_architecture": self.hf_architecture,
            "model_type": self.model_type,
            "bumblebee_version": self.bumblebee_version,
        }
        if self.native:
            data.update(
                module=self.module,
                architecture=self.architecture,
                servings=list(self.servings),
                load_options=self.load_options,
            )
        else:
            data.update(closest_module=self.closest_module, closest_heads=list(self.closest_heads), reason=self.reason)
        return data

    def to_term(self) -> tuple[Any, ...]:
        """``{:native, map}`` or ``{:not_native, map}`` with atom keys.

        Names that come from the model or the table (module, architecture,
        servings) travel as binaries, as in the model spec, so decoding never
        creates atoms.
        """
        from py_bridge.etf import Atom

        tag = Atom("native" if self.native else "not_native")
        return (tag, {Atom(k): v for k, v in self.to_json().items() if k != "native"})

    def describe(self) -> str:
        """A few lines for people."""
        name = self.hf_architecture or "this model"
        version = f"Bumblebee {self.bumblebee_version}"
        if self.native:
            lines = [
                f"{name} is supported natively by {version}.",
                f"  module:        {self.module}",
                f"  architecture:  :{self.architecture}",
            ]
            if self.load_options:
                options = ", ".join(f"{k}: :{v}" for k, v in self.load_options.items())
                lines.append(f"  load with:     Bumblebee.load_model(repository, {options})")
            if self.servings:
                lines.append("  switch to:     " + "\n                 ".join(self.servings))
            else:
                lines.append("  switch to:     no Bumblebee serving takes this head; run the model with Axon")
            return "\n".join(lines)
        lines = [f"Not yet: {self.reason}"]
        if self.closest_module:
            lines.append(
                f"  closest:       {self.closest_module}, with heads {', '.join(':' + h for h in self.closest_heads)}"
            )
        lines.append("  keep using PyBridge for this model; check again after upgrading Bumblebee")
        return "\n".join(lines)


def load_table(path: Path = TABLE_PATH) -> Table:
    """Parse the table: ``# key: value`` metadata lines, a header row, then one row per class."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot read the Bumblebee architecture table at {path}: {exc}; "
            "bridge native-check runs from a source checkout of PyBridge"
        ) from exc
    meta: dict[str, str] = {}
    rows: list[list[str]] = []
    for line in lines:
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and re.fullmatch(r"\s*\w+", key):
                meta[key.strip()] = value.strip()
        elif line.strip():
            rows.append(line.split("\t"))
    if not rows or rows[0] != _COLUMNS:
        raise ValueError(f"{path}: expected the header row {_COLUMNS}, got {rows[0] if rows else None}")
    entries: dict[str, Entry] = {}
    for row in rows[1:]:
        if len(row) != len(_COLUMNS):
            raise ValueError(f"{path}: expected {len(_COLUMNS)} tab-separated columns, got {row}")
        name, module, architecture, servings = row
        listed = () if servings == "-" else tuple(servings.split(","))
        entries[name] = Entry(name, module, architecture, listed)
    return Table(meta.get("bumblebee_version", "?"), meta.get("bumblebee_commit", "?"), entries)


def check(config: dict[str, Any], table: Table, architecture: str | None = None) -> Answer:
    """Classify a model from its ``config.json`` contents.

    ``architecture`` is the head the user asked for (PyBridge's and
    Bumblebee's ``:architecture`` option), when it differs from the class's.
    """
    classes = config.get("architectures") or []
    model_type = config.get("model_type")
    version = table.version
    if len(classes) != 1:
        # Bumblebee reads the class from a one-element list and refuses anything else.
        reason = (
            "config.json names no architecture class"
            if not classes
            else f"config.json names {len(classes)} architecture classes ({', '.join(classes)}); Bumblebee needs one"
        )
        return _not_native(None if not classes else classes[0], model_type, table, reason)
    name = classes[0]
    entry = table.entries.get(name)
    if entry is None:
        reason = f"{name} is not among the {len(table.entries)} classes Bumblebee {version} loads"
        return _not_native(name, model_type, table, reason)
    if architecture is None or architecture == entry.architecture:
        return Answer(True, name, model_type, version, entry.module, entry.architecture, entry.servings)
    heads = table.heads(entry.module)
    if architecture not in heads:
        reason = f"{entry.module} has no :{architecture} head"
        return _not_native(name, model_type, table, reason)
    return Answer(
        True,
        name,
        model_type,
        version,
        entry.module,
        architecture,
        heads[architecture],
        load_options={"architecture": architecture},
    )


def check_path(path: Path, table: Table | None = None, architecture: str | None = None) -> Answer:
    """Classify the model in a local directory (its ``config.json`` alone is read)."""
    from py_bridge.loading import read_config

    return check(read_config(path), table or load_table(), architecture)


def _not_native(name: str | None, model_type: str | None, table: Table, reason: str) -> Answer:
    families = table.family_modules()
    keys = [_family_key(name)] if name else []
    keys += [_normalize(model_type)] if model_type else []
    module = next((families[k] for k in keys if k in families), None)
    heads = tuple(table.heads(module)) if module else ()
    return Answer(False, name, model_type, table.version, closest_module=module, closest_heads=heads, reason=reason)


def _family_key(class_name: str) -> str:
    return _normalize(_HEAD_SUFFIX.sub("", class_name) or class_name)


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_serving(serving: str) -> tuple[str, str, int]:
    """``"Bumblebee.Text.fill_mask/3"`` -> ``("Bumblebee.Text", "fill_mask", 3)``."""
    target, _, arity = serving.rpartition("/")
    module, _, function = target.rpartition(".")
    return module, function, int(arity)
