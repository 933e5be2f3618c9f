"""The templates of every email we send: built-in ones, and the operator's, kept in the database.

Each kind of email has three parts (subject, html, text), each a Jinja2 template. An operator's
part replaces the built-in one; the others stay built-in. Operator templates are untrusted code:
they run in Jinja2's immutable sandbox (no attribute starting with `_`, no calls that change
data), see only plain data (the documented VARIABLES, as dicts, lists and strings), the HTML
part autoescapes, and every render has a budget (RANGE_BUDGET items from range(), OUTPUT_MAX
characters). A template is checked when it is saved: it must parse, name only known variables,
and render against sample data of its kind; the error names the part and the line.

The built-in templates (server/domain/email_layouts/) extend one responsive layout (600 px
tables that narrow to the screen, no media query needed); the HTML is CSS-inlined after
rendering (css-inline), as mail clients ignore most <style> rules.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from server.domain import clock, errors, text
from server.storage.database import db
from server.storage.models import EmailTemplate

KINDS = ("invitation", "update", "attendee_added", "reminder", "cancellation", "recording_done")
PARTS = ("subject", "html", "text")
LAYOUTS = Path(__file__).resolve().parent / "email_layouts"
SOURCE_MAX = 100_000  # characters per part: a generous email, far from a memory problem
OUTPUT_MAX = 1_000_000  # characters a part may render to
RANGE_BUDGET = 10_000  # range() items per render, over all its loops

# What every template sees (documented in docs/emails.md), each with what it holds.
VARIABLES = {
    "kind": "the email's kind (invitation, update, ...)",
    "app": "name, sender: the service's name and From address (meetings settings)",
    "meeting": "id, name, join_url, when (its span in the meeting's zone), when_utc, "
    "when_yours (at the recipients' UTC offset when their profiles give one that differs, "
    "else empty), "
    "when_short (start, for subjects), timezone, start_date, end_date (unix seconds), "
    "start_utc, end_utc (ISO 8601)",
    "host": "name, email",
    "attendees": "a list of name, email",
    "recordings": "recording_done only (else empty): a list of file_name, download_url, "
    "size_mb, duration_seconds, duration",
    "link_expires_in_days": "recording_done only: how long the download links work",
}


class TemplateBudgetExceeded(Exception):
    """A render went over its range or output budget."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with range() on a per-render budget and `*` on strings and lists capped."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise TemplateBudgetExceeded("exponent too large")
        if operator == "*" and isinstance(left, (str, list)) and isinstance(right, int):
            if len(left) * right > OUTPUT_MAX:
                raise TemplateBudgetExceeded("repetition too long")
        return super().call_binop(context, operator, left, right)


def _environment(autoescape: bool) -> _Environment:
    env = _Environment(
        loader=jinja2.FileSystemLoader(LAYOUTS),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals = {"range": _budgeted_range}
    return env


# range() items left in the render running on this thread (admin checks run beside sends).
_budget = threading.local()


def _budgeted_range(*args: int) -> range:
    items = range(*args)
    _budget.left -= len(items)
    if _budget.left < 0:
        raise TemplateBudgetExceeded(f"range() over {RANGE_BUDGET} items in one email")
    return items


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)
_INLINER = css_inline.CSSInliner(keep_at_rules=True)


def _env(part: str) -> _Environment:
    return _HTML if part == "html" else _TEXT


@functools.lru_cache(maxsize=64)
def _compiled(part: str, source: str) -> jinja2.Template:
    return _env(part).from_string(source)


@functools.cache
def _builtin_source(kind: str, part: str) -> str:
    return (LAYOUTS / f"{kind}.{_suffix(part)}").read_text()


def _suffix(part: str) -> str:
    return {"subject": "subject.txt", "html": "html", "text": "txt"}[part]


@dataclass(frozen=True)
class Template:
    kind: str
    subject: str
    html: str
    text: str
    # The parts the operator replaced (the others are built-in).
    custom: tuple[str, ...] = ()
    updated_at: str = ""

    def source(self, part: str) -> str:
        value: str = getattr(self, part)
        return value


def builtin(kind: str) -> Template:
    subject, html, plain = (_builtin_source(kind, part) for part in PARTS)
    return Template(kind, subject, html, plain)


def load_all() -> dict[str, Template]:
    """Every kind's template as it applies now (one query)."""
    rows = {row.kind: row for row in EmailTemplate.select()}
    return {kind: _merge(kind, rows.get(kind)) for kind in KINDS}


def get(kind: str) -> Template:
    check_kind(kind)
    return _merge(kind, EmailTemplate.get_or_none(EmailTemplate.kind == kind))


def _merge(kind: str, row: Any) -> Template:
    base = builtin(kind)
    if row is None:
        return base
    stored = {part: getattr(row, part) for part in PARTS}
    return Template(
        kind,
        **{part: base.source(part) if stored[part] is None else stored[part] for part in PARTS},
        custom=tuple(part for part in PARTS if stored[part] is not None),
        updated_at=clock.iso_ms(row.updated_at),
    )


def check_kind(kind: str) -> None:
    """InvalidFields naming `kind` unless it is one of KINDS."""
    if kind not in KINDS:
        raise errors.InvalidFields({"kind": [f"unknown email kind; known: {', '.join(KINDS)}"]})


def update(kind: str, parts: Mapping[str, str | None], sample: Mapping[str, Any]) -> Template:
    """Store the given parts of `kind` (None or "" = back to the built-in part), each checked
    first against `sample` variables (InvalidFields naming the part and line); returns the
    template as it now applies."""
    check_kind(kind)
    found = errors.FieldErrors()
    for part, source in parts.items():
        if part not in PARTS:
            found.add(part, f"unknown part; known: {', '.join(PARTS)}")
        elif source and text.check(found, part, source):
            for problem in problems(part, source, sample):
                found.add(part, problem)
    found.raise_if_any()
    with db.atomic():
        row = EmailTemplate.get_or_none(EmailTemplate.kind == kind)
        values = {part: getattr(row, part) if row is not None else None for part in PARTS}
        # A part given as the built-in source is the built-in part (it follows upgrades).
        base = builtin(kind)
        values.update(
            {p: None if not src or src == base.source(p) else src for p, src in parts.items()}
        )
        if all(value is None for value in values.values()):
            EmailTemplate.delete().where(EmailTemplate.kind == kind).execute()
        else:
            now = clock.now()
            changed = {getattr(EmailTemplate, part): values[part] for part in PARTS}
            EmailTemplate.insert(kind=kind, updated_at=now, **values).on_conflict(
                conflict_target=[EmailTemplate.kind],
                update={**changed, EmailTemplate.updated_at: now},
            ).execute()
    return get(kind)


def problems(part: str, source: str, sample: Mapping[str, Any]) -> list[str]:
    """Why `source` cannot be a `part` rendered with `sample` (empty if it can): each with
    its line."""
    if len(source) > SOURCE_MAX:
        return [f"must be at most {SOURCE_MAX:,} characters"]
    env = _env(part)
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [f"line {exc.lineno}: {exc.message}"]
    unknown = sorted(meta.find_undeclared_variables(tree) - VARIABLES.keys() - {"range"})
    if unknown:
        return [
            f"line {_first_use(tree, name)}: unknown variable '{name}'; "
            f"known: {', '.join(VARIABLES)}"
            for name in unknown
        ]
    try:
        _render_part(part, source, sample)
    except Exception as exc:  # untrusted code: whatever it raises is the answer
        return [failure(exc)]
    return []


def _first_use(tree: nodes.Template, name: str) -> int:
    return min((node.lineno for node in tree.find_all(nodes.Name) if node.name == name), default=1)


def _template_line(exc: BaseException) -> int:
    """The template line a render failed on (Jinja2 rewrites tracebacks to template lines)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == "<template>" and frame.lineno is not None
    ]
    return lines[-1] if lines else 1


def failure(exc: BaseException) -> str:
    """What went wrong in a template's render, with its line: `line 3: 'x' is undefined`."""
    return f"line {_template_line(exc)}: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.UndefinedError | jinja2.exceptions.SecurityError):
        return str(exc.message or exc)
    if isinstance(exc, TemplateBudgetExceeded):
        return f"over the render budget: {exc}"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc.message or exc)
    # Plain Python errors of a template's own expressions (1/0, int('x')): their kind and text.
    return f"{type(exc).__name__}: {exc}"[:300]


def _render_part(part: str, source: str, variables: Mapping[str, Any]) -> str:
    _budget.left = RANGE_BUDGET
    size = 0
    pieces = []
    for piece in _compiled(part, source).generate(**variables):
        size += len(piece)
        if size > OUTPUT_MAX:
            raise TemplateBudgetExceeded(f"output over {OUTPUT_MAX:,} characters")
        pieces.append(piece)
    return "".join(pieces)


def render(template: Template, variables: Mapping[str, Any]) -> Rendered:
    """The three parts; raises whatever the template raises (callers fall back)."""
    subject = " ".join(_render_part("subject", template.subject, variables).split())
    html = _INLINER.inline(_render_part("html", template.html, variables))
    return Rendered(subject, html, _render_part("text", template.text, variables))


def render_builtin(kind: str, variables: Mapping[str, Any]) -> Rendered:
    return render(builtin(kind), variables)
