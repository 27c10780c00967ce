"""Landing-URL templates: validation, compilation, expansion.

A template is an absolute http(s) URL whose path, query or fragment may hold macros
such as ``{click_id}`` or ``{sub1}``. Macros may never appear in the scheme or host, so
no visitor-supplied value can change where a redirect goes. Every value is
percent-encoded on expansion.
"""

from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import quote, urlsplit

from core.errors import ValidationError

CLICK_MACROS = (
    "click_id",
    "transaction_id",
    "offer_id",
    "affiliate_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "source_id",
    "country",
)
_MACRO_RE = re.compile(r"\{([a-z0-9_]+)\}")
_FORBIDDEN_CHARS_RE = re.compile(r"[\x00-\x20\x7f<>\"\\^`|]")
_SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_.~-]*")
URL_MAX_LENGTH = 2048
_ALIASES = {"transaction_id": "click_id"}


def validate_url_template(template: str, allowed: tuple[str, ...] = CLICK_MACROS) -> str:
    """Return ``template`` if it is a safe landing template, else raise ValidationError."""
    if not isinstance(template, str) or not template:
        raise ValidationError("invalid_url", "a URL is required")
    if len(template) > URL_MAX_LENGTH:
        raise ValidationError("invalid_url", f"URL longer than {URL_MAX_LENGTH} characters")
    if _FORBIDDEN_CHARS_RE.search(template):
        raise ValidationError("invalid_url", "URL contains whitespace, control or unsafe characters")
    for name in _MACRO_RE.findall(template):
        if name not in allowed:
            raise ValidationError("invalid_url", f"unknown macro {{{name}}}")
    first_macro = template.find("{")
    fixed = template if first_macro < 0 else template[:first_macro]
    parts = urlsplit(template.replace("{", "x").replace("}", "x"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("invalid_url", "URL must be absolute http or https")
    if parts.username or parts.password or "@" in parts.netloc:
        raise ValidationError("invalid_url", "URL must not carry credentials")
    authority_end = len(parts.scheme) + 3 + len(parts.netloc)
    if first_macro >= 0 and (first_macro < authority_end or len(fixed) < authority_end):
        raise ValidationError("invalid_url", "macros are allowed only in the path, query or fragment")
    return template


class CompiledTemplate:
    """A validated template split into literal text and macro slots, expanded fast."""

    __slots__ = ("template", "_parts")

    def __init__(self, template: str):
        self.template = template
        self._parts: list[tuple[str, str | None]] = []
        pos = 0
        for match in _MACRO_RE.finditer(template):
            name = match.group(1)
            self._parts.append((template[pos : match.start()], _ALIASES.get(name, name)))
            pos = match.end()
        self._parts.append((template[pos:], None))

    def expand(self, values: Mapping[str, str | None]) -> str:
        out = []
        for literal, name in self._parts:
            out.append(literal)
            if name is not None:
                value = values.get(name)
                if value:
                    out.append(value if _SAFE_VALUE_RE.fullmatch(value) else quote(value, safe=""))
        return "".join(out)
