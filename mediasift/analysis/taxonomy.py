"""Taxonomies and rules from one YAML file (`MEDIASIFT_TAXONOMY`): what objects are (labels) and what
must be flagged about them (rules).

Labels are scored by their `prompts` (max cosine between a prompt's text embedding and the object's text
embedding or text rows; a prompt and one of the object's visual tags containing each other as whole words
score 1) and their `examples` (cosine
to the centroid of the example objects' embeddings, per space). Classification is a pure function of the
objects, the taxonomy and the text encoder, so re-applying a taxonomy changes nothing, and the taxonomy's
`fingerprint` tells a caller when it has changed and labels must be re-applied. Rule flags carry an id
that depends only on the rule and the object version, so an alert is sent once per version.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Protocol

import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mediasift.analysis.reference import ObjectRef
from mediasift.errors import MediasiftError
from mediasift.identity import version_hash

log = logging.getLogger(__name__)


class TaxonomyError(MediasiftError):
    """A taxonomy file that cannot be used; the message names the file, the line and the field."""

    def __init__(self, source: str, line: int | None, field: str, message: str):
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        self.source, self.line, self.field, self.message = source, line, field, message


def _as_tuple(value):
    return (value,) if isinstance(value, str) else value


def _label_name(value: str) -> str:
    if "/" in value:
        raise ValueError(f"label name {value!r} has a '/': nest a child label under its parent's `children`")
    return value


Strings = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Name = Annotated[str, Field(min_length=1), AfterValidator(_label_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Spec):
    name: Name
    prompts: Strings = ()
    examples: Strings = ()
    """Object keys (or s3://bucket/key) whose embeddings make the label's centroid."""
    target_share: float | None = Field(None, gt=0, le=1)
    min_score: float | None = None
    children: tuple[LabelSpec, ...] = ()

    @model_validator(mode="after")
    def _scorable(self) -> LabelSpec:
        if not (self.prompts or self.examples or self.children):
            raise ValueError(f"label {self.name!r} has no prompts, examples or children, so nothing can match it")
        _unique((c.name for c in self.children), f"children of {self.name!r}")
        return self


class ClassifySpec(_Spec):
    top_k: int = Field(3, ge=1)
    min_score: float = 0.35
    unassigned: str = "unassigned"


class GapSpec(_Spec):
    min_members: int = Field(5, ge=0)
    """A label with fewer members than this is reported as a gap."""
    cluster_label_share: float = Field(0.5, gt=0, le=1)
    """A cluster is labelled with a taxonomy label only if at least this share of its members carry it."""


class EntityCondition(_Spec):
    label: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _something(self) -> EntityCondition:
        if self.label is None and self.text is None:
            raise ValueError("an entity condition needs a label, a text or both")
        return self


def _duplicate(value):
    return "any" if value is True else value


class RuleWhen(_Spec):
    """Every condition given must hold; rules with different conditions are alternatives."""

    entity: EntityCondition | None = None
    phrase: str | None = Field(None, min_length=1)
    regex: str | None = Field(None, min_length=1)
    layers: Strings = ()
    """Text layers `phrase` and `regex` look in; none given: all of them."""
    content_type: Strings = ()
    """Glob patterns, e.g. `image/*`."""
    prefix: str | None = None
    min_size: int | None = Field(None, ge=0)
    max_size: int | None = Field(None, ge=0)
    anomaly_over: float | None = None
    duplicate: Annotated[Literal["any", "exact", "near"] | None, BeforeValidator(_duplicate)] = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"invalid regular expression {value!r}: {e}") from e
        return value

    @model_validator(mode="after")
    def _something(self) -> RuleWhen:
        if not self.model_dump(exclude_defaults=True, exclude={"layers"}):
            raise ValueError("a rule needs at least one condition")
        return self


class RuleSpec(_Spec):
    name: Annotated[str, Field(min_length=1)]
    when: RuleWhen


class Taxonomy(_Spec):
    version: Literal[1] = 1
    classify: ClassifySpec = ClassifySpec()
    gaps: GapSpec = GapSpec()
    labels: tuple[LabelSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()

    @field_validator("labels", "rules")
    @classmethod
    def _unique_names(cls, specs: tuple) -> tuple:
        _unique((spec.name for spec in specs), "this list")
        return specs

    @model_validator(mode="after")
    def _fallback_is_no_label(self) -> Taxonomy:
        if self.classify.unassigned in {path for path, _ in self.label_tree()}:
            raise ValueError(f"classify.unassigned {self.classify.unassigned!r} is also a label")
        return self

    def label_tree(self) -> Iterator[tuple[str, LabelSpec]]:
        """Every label as (path, spec), parents before children; a child's path is `parent/child`."""

        def walk(specs: Sequence[LabelSpec], prefix: str) -> Iterator[tuple[str, LabelSpec]]:
            for spec in specs:
                yield prefix + spec.name, spec
                yield from walk(spec.children, f"{prefix}{spec.name}/")

        return walk(self.labels, "")

    @property
    def fingerprint(self) -> str:
        """Hash of the validated taxonomy: comments, layout and defaults written out do not change it."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _unique(names, where: str) -> None:
    if twice := sorted(n for n, count in Counter(names).items() if count > 1):
        raise ValueError(f"duplicate names in {where}: {', '.join(twice)}")


def load_taxonomy(path: str | Path) -> Taxonomy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TaxonomyError(str(path), None, "", f"cannot read the taxonomy file: {e.strerror}") from e
    return parse_taxonomy(text, str(path))


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> Taxonomy:
    """Validate a taxonomy; errors name the line and field (`labels[0].children[1].target_share`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise TaxonomyError(source, mark.line + 1 if mark else None, "", f"invalid YAML: {e.problem}") from e
    if not isinstance(data, dict):
        raise TaxonomyError(source, 1, "", "expected a mapping with `labels` and/or `rules`")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = first["loc"]
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise TaxonomyError(source, _line_of(root, loc), _field_name(loc), message + more) from e


def _field_name(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The line of the deepest YAML node on the error's path (the parent mapping for a missing field)."""
    line = node.start_mark.line + 1 if node else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


class TextEncoder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised rows, one per text."""


@dataclass(frozen=True, eq=False)
class Evidence:
    """What classification reads of one object: its text rows' embeddings, its object-level embedding per
    space (`text`, `visual`; means need not be unit length) and its visual tags."""

    ref: ObjectRef
    text_rows: np.ndarray | None = None
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float | None
    """None for the `unassigned` fallback."""


@dataclass(frozen=True)
class Classification:
    ref: ObjectRef
    labels: tuple[LabelScore, ...]

    def as_json(self) -> dict:
        return {**self.ref.as_json(), "labels": [{"label": s.label, "score": s.score} for s in self.labels]}


@dataclass(frozen=True)
class _Label:
    path: str
    spec: LabelSpec
    prompts: np.ndarray
    words: tuple[re.Pattern, ...]
    centroids: Mapping[str, np.ndarray]


class Classifier:
    """A taxonomy made ready to score objects: prompts embedded and example centroids computed once."""

    def __init__(self, taxonomy: Taxonomy, encoder: TextEncoder, examples: Mapping[str, Mapping[str, np.ndarray]]):
        """`examples`: example key → its object-level embeddings per space."""
        self.taxonomy = taxonomy
        tree = list(taxonomy.label_tree())
        prompts = [p for _, spec in tree for p in spec.prompts]
        vectors = _unit(encoder.embed(prompts)) if prompts else np.zeros((0, 1), np.float32)
        self.labels: list[_Label] = []
        self.missing_examples: dict[str, tuple[str, ...]] = {}
        start = 0
        for path, spec in tree:
            found = [examples[k] for k in spec.examples if k in examples]
            if missing := tuple(k for k in spec.examples if k not in examples):
                self.missing_examples[path] = missing
                log.warning("taxonomy_examples_missing label=%s keys=%s", path, ",".join(missing))
            self.labels.append(_Label(path, spec, vectors[start:start + len(spec.prompts)],
                                      tuple(_word_pattern(p) for p in spec.prompts), _centroids(found)))
            start += len(spec.prompts)

    def classify(self, obj: Evidence) -> Classification:
        c = self.taxonomy.classify
        sources, tags = _text_sources(obj), [(tag, _word_pattern(tag)) for tag in obj.tags]
        scored = {label.path: self._score(label, obj, sources, tags) for label in self.labels}
        passed = [(label.path, scored[label.path]) for label in self.labels
                  if scored[label.path] >= (label.spec.min_score if label.spec.min_score is not None else c.min_score)]
        chosen = dict(sorted(passed, key=lambda ps: (-ps[1], ps[0]))[: c.top_k])
        for path, score in list(chosen.items()):
            for parent in _ancestors(path):
                chosen[parent] = max(chosen.get(parent, -np.inf), score, scored[parent])
        if not chosen:
            return Classification(obj.ref, (LabelScore(c.unassigned, None),))
        ranked = sorted(chosen.items(), key=lambda ps: (-ps[1], ps[0]))
        return Classification(obj.ref, tuple(LabelScore(p, round(float(s), 6)) for p, s in ranked))

    @staticmethod
    def _score(label: _Label, obj: Evidence, sources: np.ndarray, tags: list[tuple[str, re.Pattern]]) -> float:
        """The label's best evidence: prompt cosines, a prompt and a tag naming each other (1), example
        centroid cosines; -1 when there is none."""
        scores = [-1.0]
        if len(label.prompts) and len(sources):
            scores.append(float((label.prompts @ sources.T).max()))
        if any(p.search(tag) or t.search(prompt) for prompt, p in zip(label.spec.prompts, label.words, strict=True)
               for tag, t in tags):
            scores.append(1.0)
        for space, centroid in label.centroids.items():
            if space in obj.embeddings:
                scores.append(float(_unit(np.asarray(obj.embeddings[space], np.float32)) @ centroid))
        return max(scores)


def classify_all(objects: Sequence[Evidence], taxonomy: Taxonomy, encoder: TextEncoder) -> tuple[Classification, ...]:
    """Every object's labels, in input order; examples are looked up among the objects themselves."""
    examples: dict[str, Mapping[str, np.ndarray]] = {}
    for obj in objects:
        examples[obj.ref.key] = examples[f"s3://{obj.ref.bucket}/{obj.ref.key}"] = obj.embeddings
    classifier = Classifier(taxonomy, encoder, examples)
    return tuple(classifier.classify(obj) for obj in objects)


def labels_by_object(classifications: Sequence[Classification], unassigned: str) -> dict[str, frozenset[str]]:
    """Object id → its labels (parents included, the fallback left out): what cluster labels and gaps count."""
    return {c.ref.object_id: frozenset(s.label for s in c.labels if s.label != unassigned) for c in classifications}


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _word_pattern(phrase: str) -> re.Pattern:
    """A phrase as whole words, any whitespace between them, any case."""
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", re.IGNORECASE)


def _text_sources(obj: Evidence) -> np.ndarray:
    parts = [np.asarray(obj.embeddings["text"], np.float32).reshape(1, -1)] if "text" in obj.embeddings else []
    if obj.text_rows is not None and len(obj.text_rows):
        parts.append(np.asarray(obj.text_rows, np.float32))
    return _unit(np.vstack(parts)) if parts else np.zeros((0, 1), np.float32)


def _centroids(found: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    spaces = sorted({space for embeddings in found for space in embeddings})
    return {s: _unit(np.mean([_unit(np.asarray(e[s], np.float32)) for e in found if s in e], axis=0))
            for s in spaces}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


TEXT_LAYERS = ("transcript", "pages", "scenes")
"""The layers whose rows are words that prompts, phrases and regexes read."""


@dataclass(frozen=True)
class TextRow:
    layer: str
    text: str
    page: int | None = None
    t_start: float | None = None


@dataclass(frozen=True)
class Entity:
    label: str
    text: str
    layer: str | None = None
    page: int | None = None
    t_start: float | None = None


@dataclass(frozen=True)
class ObjectFacts:
    """What rules read of one object version."""

    ref: ObjectRef
    version_id: str | None = None
    content_type: str | None = None
    size: int | None = None
    text: tuple[TextRow, ...] = ()
    entities: tuple[Entity, ...] = ()
    anomaly_score: float | None = None
    duplicate_of: ObjectRef | None = None
    duplicate_kind: Literal["exact", "near"] | None = None


@dataclass(frozen=True)
class Flag:
    rule: str
    ref: ObjectRef
    reason: str
    id: str
    """sha256 of (rule, object version): the idempotency id an alert is sent under."""

    def as_json(self) -> dict:
        return {**self.ref.as_json(), "rule": self.rule, "reason": self.reason, "id": self.id}


def flag_id(rule: str, facts: ObjectFacts) -> str:
    version = version_hash(facts.ref.bucket, facts.ref.key, facts.ref.etag, facts.version_id)
    return hashlib.sha256(f"{rule}\0{version}".encode()).hexdigest()


def evaluate_rules(rules: Sequence[RuleSpec], facts: ObjectFacts) -> list[Flag]:
    """The rules an object version trips, each with what tripped it."""
    flags = []
    for rule in rules:
        found = [_CHECKS[name](rule.when, facts) for name in _conditions(rule.when)]
        if all(found):
            reason = f"rule:{rule.name}: " + "; ".join(found)
            flags.append(Flag(rule.name, facts.ref, reason, flag_id(rule.name, facts)))
    return flags


def _conditions(when: RuleWhen) -> list[str]:
    """The conditions a rule sets; each has a check saying why it holds (a fragment of the reason) or None."""
    given = when.model_dump(exclude_defaults=True, exclude={"layers", "regex", "phrase"})
    return (["text"] if when.phrase or when.regex else []) + list(given)


def _entity(when: RuleWhen, facts: ObjectFacts) -> str | None:
    wanted = when.entity
    for e in facts.entities:
        if (wanted.label is None or e.label == wanted.label) and (wanted.text is None or _same(e.text, wanted.text)):
            return f"{e.label} {e.text!r}{_where(e.layer, e.page, e.t_start)}"
    return None


def _text(when: RuleWhen, facts: ObjectFacts) -> str | None:
    pattern = re.compile(when.regex) if when.regex else _word_pattern(when.phrase)
    shown = f"/{when.regex}/" if when.regex else repr(when.phrase)
    for row in facts.text:
        if (not when.layers or row.layer in when.layers) and (match := pattern.search(row.text)):
            said = f" ({match.group(0)!r})" if when.regex else ""
            return f"{shown}{said}{_where(row.layer, row.page, row.t_start)}"
    return None


def _content_type(when: RuleWhen, facts: ObjectFacts) -> str | None:
    kind = (facts.content_type or "").split(";")[0].strip().lower()
    if kind and any(fnmatch.fnmatchcase(kind, p.lower()) for p in when.content_type):
        return f"content type {kind}"
    return None


def _prefix(when: RuleWhen, facts: ObjectFacts) -> str | None:
    return f"key under {when.prefix!r}" if facts.ref.key.startswith(when.prefix) else None


def _min_size(when: RuleWhen, facts: ObjectFacts) -> str | None:
    return f"size {facts.size} ≥ {when.min_size}" if facts.size is not None and facts.size >= when.min_size else None


def _max_size(when: RuleWhen, facts: ObjectFacts) -> str | None:
    return f"size {facts.size} ≤ {when.max_size}" if facts.size is not None and facts.size <= when.max_size else None


def _anomaly(when: RuleWhen, facts: ObjectFacts) -> str | None:
    score = facts.anomaly_score
    return f"anomaly {score:.3f} > {when.anomaly_over}" if score is not None and score > when.anomaly_over else None


def _duplicate_of(when: RuleWhen, facts: ObjectFacts) -> str | None:
    if facts.duplicate_of is None or when.duplicate not in ("any", facts.duplicate_kind):
        return None
    of = facts.duplicate_of
    return f"{facts.duplicate_kind or 'a'} duplicate of s3://{of.bucket}/{of.key}"


_CHECKS = {"entity": _entity, "text": _text, "content_type": _content_type, "prefix": _prefix,
           "min_size": _min_size, "max_size": _max_size, "anomaly_over": _anomaly, "duplicate": _duplicate_of}


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _where(layer: str | None, page: int | None, t_start: float | None) -> str:
    """Where in the object: a page says enough; a time is told with its layer (transcript or scenes)."""
    if page is not None:
        return f" on page {page}"
    return (f" in {layer}" if layer else "") + (f" at {t_start:g} s" if t_start is not None else "")
