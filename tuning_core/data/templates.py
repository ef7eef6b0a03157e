"""Render --data_formatter_template for every record.

Plain ``{{field}}`` templates (fms-hf-tuning's documented form, where field names may hold spaces, dots,
underscores and dashes) are compiled once into literal pieces and field lookups: no code runs, so there is
nothing to sandbox, and it is fast. Templates using other Jinja syntax are rendered by Jinja's immutable
sandbox, also compiled once.
"""

from __future__ import annotations

import re

from tuning_core.data.readers import MISSING, Records
from tuning_core.errors import ConfigError, DataError

FIELD_RE = re.compile(r"\{\{\s*([A-Za-z0-9 ._-]+?)\s*\}\}")
# fms-hf-tuning's form {{element['Tweet text']}}: the same field lookup, written as Jinja.
ELEMENT_RE = re.compile(r"""\{\{\s*element\s*\[\s*(['"])([A-Za-z0-9 ._-]+?)\1\s*\]\s*\}\}""")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def template_fields(template: str) -> list[str]:
    """Field names used as ``{{name}}`` in ``template``, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in FIELD_RE.finditer(template)))


def render_all(template: str, records: Records, special_tokens: dict[str, str] | None = None) -> list[str]:
    """One string per record. A field missing from a record is a DataError naming the field and the record.

    ``special_tokens`` (bos_token, eos_token, ...) may be used as fields; a data field of the same name wins.
    """
    template = ELEMENT_RE.sub(lambda m: "{{" + m.group(2) + "}}", template)
    specials = {k: v for k, v in (special_tokens or {}).items() if k not in records.names}
    used = [f for f in template_fields(template) if f in specials]
    if used:  # literal text, so the fast path stays fast
        template = FIELD_RE.sub(
            lambda m: specials[m.group(1)].replace("{", "{{ '{' }}") if m.group(1) in specials else m.group(0), template
        )
    fields = template_fields(template)
    remainder = FIELD_RE.sub("", template)
    uses_jinja = "{{" in remainder or "{%" in remainder or "{#" in remainder
    if not fields and not uses_jinja:
        raise ConfigError(f"--data_formatter_template {template!r} uses no fields; write fields as {{{{name}}}}")
    absent = [f for f in fields if f not in records.names]
    if absent:
        raise DataError(
            f"field {absent[0]!r} used by --data_formatter_template is not in the data "
            f"({records.where(0)} has fields: {', '.join(records.names)})"
        )
    columns = {name: records.column(name) for name in fields}
    _check_present(columns, records)
    if uses_jinja:
        columns.update({name: records.column(name) for name in records.names if name not in columns})
        return _render_jinja(template, columns, records, specials)
    return _render_plain(template, columns)


def _check_present(columns: dict[str, list], records: Records) -> None:
    for name, values in columns.items():
        for i, v in enumerate(values):
            if v is MISSING or v is None:
                what = "has no field" if v is MISSING else "has a null"
                raise DataError(f"{records.where(i)} {what} {name!r}, which --data_formatter_template needs")


def _render_plain(template: str, columns: dict[str, list]) -> list[str]:
    # Split into literal text and field names: "a {{x}} b" -> ["a ", "x", " b"]; fields sit at odd positions.
    pieces = FIELD_RE.split(template)
    literals = [p.replace("%", "%%") for p in pieces[0::2]]
    fmt = "%s".join(literals)
    names = pieces[1::2]
    value_lists = [[v if isinstance(v, str) else str(v) for v in columns[n]] for n in names]
    return [fmt % values for values in zip(*value_lists, strict=False)]


def _render_jinja(template: str, columns: dict[str, list], records: Records, specials: dict) -> list[str]:
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Names that are not Jinja identifiers ("Tweet text") are read from a dict instead.
    def as_lookup(m: re.Match) -> str:
        name = m.group(1)
        return m.group(0) if _IDENTIFIER_RE.match(name) else f"{{{{ _record[{name!r}] }}}}"

    source = FIELD_RE.sub(as_lookup, template)
    env = bounded_sandbox(ImmutableSandboxedEnvironment, undefined=StrictUndefined, keep_trailing_newline=True)
    try:
        compiled = env.from_string(source)
    except TemplateError as e:
        raise ConfigError(f"--data_formatter_template is not a valid template: {e}") from None
    out = []
    names = list(columns)
    for i, values in enumerate(zip(*(columns[n] for n in names), strict=False)):
        record = {k: v for k, v in zip(names, values, strict=False) if v is not MISSING}
        try:
            out.append(render_bounded(env, compiled, {**specials, **record, "_record": record, "element": record}))
        except (TemplateError, TemplateLimitError) as e:
            raise DataError(f"{records.where(i)}: --data_formatter_template failed: {e}") from None
    return out


# What one example's template may do; a template beyond these is refused, not run to exhaustion.
MAX_RENDERED_CHARS = 4_000_000
MAX_LOOP_ITERATIONS = 100_000


class TemplateLimitError(Exception):
    pass


def bounded_sandbox(base, **kwargs):
    """A sandbox whose range() counts iterations against a per-render budget and whose * and ** refuse
    results larger than the rendered-size cap (``'a' * 50000000`` is refused before it is built)."""

    class Bounded(base):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise TemplateLimitError(f"the template computes a power above 64 ({right})")
            if operator == "*" and isinstance(right, int) and isinstance(left, (str, list, tuple)):
                left, right = right, left
            if (
                operator == "*"
                and isinstance(left, int)
                and isinstance(right, (str, list, tuple))
                and left * len(right) > MAX_RENDERED_CHARS
            ):
                raise TemplateLimitError(
                    f"the template builds a value of {left * len(right):,} items, over the {MAX_RENDERED_CHARS:,} limit"
                )
            return super().call_binop(context, operator, left, right)

    env = Bounded(**kwargs)
    env.globals["range"] = _counting_range
    return env


_budget = {"left": MAX_LOOP_ITERATIONS}


def _counting_range(*args):
    def gen():
        for value in range(*args):
            _budget["left"] -= 1
            if _budget["left"] < 0:
                raise TemplateLimitError(f"the template loops more than {MAX_LOOP_ITERATIONS:,} times")
            yield value

    return gen()


def render_bounded(env, compiled, context: dict) -> str:
    """Render, stopping at MAX_RENDERED_CHARS of output or MAX_LOOP_ITERATIONS of range()."""
    _budget["left"] = MAX_LOOP_ITERATIONS
    parts, size = [], 0
    for chunk in compiled.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise TemplateLimitError(f"the rendered text is longer than {MAX_RENDERED_CHARS:,} characters")
        parts.append(chunk)
    return "".join(parts)
