"""A small document model written out as Markdown, one self-contained HTML file, or plain text.

The rendered ruleset docs and the diff reports are built once as blocks of this model
and then written in each format, so the Markdown pages and the HTML file always say
the same thing, and the output depends on nothing but the input (no third-party
renderer whose version could change a byte). Links name a page and an anchor; each
writer turns them into what its format needs (a relative path, or an in-page anchor).
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import Literal, TypeAlias

import attrs

__all__ = [
    "Block",
    "Bullets",
    "Card",
    "Heading",
    "Inline",
    "Item",
    "Page",
    "Paragraph",
    "Span",
    "Table",
    "Target",
    "code",
    "em",
    "join",
    "link",
    "md_escape",
    "page_anchor",
    "strong",
    "to_html",
    "to_markdown",
    "to_text",
]


@attrs.frozen
class Target:
    """Where a link points: a page (its path) and optionally an anchor in it."""

    page: str
    anchor: str | None = None


@attrs.frozen
class Span:
    """Marked-up inline content: emphasis, strong emphasis, code, a link, or a plain group."""

    kind: Literal["em", "strong", "code", "link", "group"]
    parts: tuple[Inline, ...]
    target: Target | None = None


Inline: TypeAlias = str | Span


def em(*parts: Inline) -> Span:
    """Emphasised text."""
    return Span("em", parts)


def strong(*parts: Inline) -> Span:
    """Strongly emphasised text."""
    return Span("strong", parts)


def code(text: str) -> Span:
    """Literal text: an id, a file name, a field."""
    return Span("code", (text,))


def join(pieces: Iterable[Sequence[Inline]], separator: str = ", ") -> list[Inline]:
    """The pieces one after another, with ``separator`` between them."""
    out: list[Inline] = []
    for index, piece in enumerate(pieces):
        out += [separator] if index else []
        out += piece
    return out


def link(target: Target | None, *parts: Inline) -> Inline:
    """A link to ``target``, or just the text when there is nowhere to link to."""
    if target is None:
        return parts[0] if len(parts) == 1 else Span("group", parts)
    return Span("link", parts, target)


@attrs.frozen
class Heading:
    """A heading of ``level`` 1 to 4, optionally with an anchor other pages link to."""

    level: int
    content: tuple[Inline, ...]
    anchor: str | None = None


@attrs.frozen
class Paragraph:
    """A paragraph."""

    content: tuple[Inline, ...]


@attrs.frozen
class Item:
    """A list item, with its own sub-items."""

    content: tuple[Inline, ...]
    children: tuple[Item, ...] = ()


@attrs.frozen
class Bullets:
    """A bulleted list."""

    items: tuple[Item, ...]


@attrs.frozen
class Table:
    """A table: a header row and rows of cells, each cell inline content."""

    header: tuple[str, ...]
    rows: tuple[tuple[tuple[Inline, ...], ...], ...]


@attrs.frozen
class Card:
    """A group of blocks shown as one card (a rule), with an anchor."""

    anchor: str
    blocks: tuple[Block, ...]


Block: TypeAlias = Heading | Paragraph | Bullets | Table | Card


@attrs.frozen
class Page:
    """One page: where it is written (a relative path with ``/``), its title and its blocks."""

    path: str
    title: str
    blocks: tuple[Block, ...]


# ------------------------------------------------------------------- text


def to_text(parts: Iterable[Inline]) -> str:
    """Plain text: the words only."""
    return "".join(p if isinstance(p, str) else to_text(p.parts) for p in parts)


# --------------------------------------------------------------- Markdown

#: How much of a text :func:`md_escape` escapes, by where the text comes from and goes.
#:
#: ``"text"``
#:     our own prose in the rendered pages: inline markup characters (backslash,
#:     backtick, ``*``, ``_``, brackets, ``<``, ``>``, ``|``), and a leading ``#``, ``+``,
#:     ``-`` or ``=`` that would start a heading, list or rule.
#: ``"record"``
#:     text that came from a patient record (CDS Hooks cards): every character that
#:     could make Markdown or HTML of it, ``#`` anywhere included.
#: ``"table-cell"``
#:     our own words in a table cell of a Markdown report: only the ``|`` that would end the cell.
MdEscape = Literal["text", "record", "table-cell"]

_MD_SPECIALS: dict[str, re.Pattern[str]] = {
    "text": re.compile(r"([\\`*_\[\]<>|])"),
    "record": re.compile(r"([\\*_`\[\]<>#|])"),
    "table-cell": re.compile(r"(\|)"),
}
_MD_LEADING = {"text": ("#", "+", "-", "="), "record": (), "table-cell": ()}
#: Each policy's characters, the backslash first (so the backslashes put in front of the
#: others are not escaped again): :func:`md_escape` replaces each one present with
#: :meth:`str.replace`, the same escapes as ``_MD_SPECIALS``' substitution without a
#: Python call per character found.
_MD_CHARS = {
    policy: tuple(c for c in "\\`*_[]<>|#" if pattern.match(c)) for policy, pattern in _MD_SPECIALS.items()
}


def md_escape(text: str, policy: MdEscape = "text") -> str:
    """``text`` with a backslash before each character Markdown would read as markup.

    The one Markdown escaper of ketacds: ``policy`` (see :data:`MdEscape`) says how much.
    """
    escaped = text
    if _MD_SPECIALS[policy].search(text):
        for char in _MD_CHARS[policy]:
            if char in escaped:
                escaped = escaped.replace(char, "\\" + char)
    return "\\" + escaped if escaped[:1] in _MD_LEADING[policy] else escaped


def _md_inline(parts: Iterable[Inline], page: str) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(md_escape(part))
        elif part.kind == "code":
            out.append(f"`{to_text(part.parts)}`")
        elif part.kind == "em":
            out.append(f"*{_md_inline(part.parts, page)}*")
        elif part.kind == "strong":
            out.append(f"**{_md_inline(part.parts, page)}**")
        elif part.kind == "group":
            out.append(_md_inline(part.parts, page))
        else:
            assert part.target is not None
            out.append(f"[{_md_inline(part.parts, page)}]({_md_href(part.target, page)})")
    return "".join(out)


def _md_href(target: Target, page: str) -> str:
    anchor = f"#{target.anchor}" if target.anchor else ""
    if target.page == page:
        return anchor or "#"
    return posixpath.relpath(target.page, posixpath.dirname(page) or ".") + anchor


def _md_items(items: Sequence[Item], page: str, depth: int) -> list[str]:
    lines = []
    for item in items:
        lines.append("  " * depth + "- " + _md_inline(item.content, page))
        lines += _md_items(item.children, page, depth + 1)
    return lines


def _md_block(block: Block, page: str) -> list[str]:
    if isinstance(block, Heading):
        anchor = [f'<a id="{block.anchor}"></a>', ""] if block.anchor else []
        return [*anchor, "#" * block.level + " " + _md_inline(block.content, page), ""]
    if isinstance(block, Paragraph):
        return [_md_inline(block.content, page), ""]
    if isinstance(block, Bullets):
        return [*_md_items(block.items, page, 0), ""]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(md_escape(h) for h in block.header) + " |"]
        lines.append("|" + "---|" * len(block.header))
        lines += ["| " + " | ".join(_md_inline(cell, page) for cell in row) + " |" for row in block.rows]
        return [*lines, ""]
    lines = [f'<a id="{block.anchor}"></a>', ""]
    for inner in block.blocks:
        lines += _md_block(inner, page)
    return lines


def to_markdown(page: Page, *, preamble: str | None = None) -> str:
    """The page as GitHub-flavoured Markdown; ``preamble`` (an HTML comment, say) goes first."""
    lines = [preamble, ""] if preamble else []
    for block in page.blocks:
        lines += _md_block(block, page.path)
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------- HTML

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f23;background:#f6f8fa}
nav{position:fixed;top:0;bottom:0;left:0;width:15rem;overflow:auto;padding:1rem;background:#fff;
border-right:1px solid #d0d7de;font-size:14px}
nav ul{list-style:none;padding-left:.8rem;margin:.2rem 0}
main{margin-left:17rem;max-width:60rem;padding:1rem 2rem}
section.page{border-bottom:2px solid #d0d7de;padding-bottom:1rem;margin-bottom:2rem}
article.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1.2rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f0f3f6}
code{background:#eff1f3;padding:0 .2rem;border-radius:3px;font-size:90%}
a{color:#0550ae}
@media print{nav{display:none}main{margin-left:0}}
""".strip()


def page_anchor(path: str) -> str:
    """The anchor a whole page gets in the single HTML file."""
    stem = path.removesuffix(".md")
    return "page-" + re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")


def _html_inline(parts: Iterable[Inline]) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(html.escape(part, quote=False))
        elif part.kind == "code":
            out.append(f"<code>{html.escape(to_text(part.parts), quote=False)}</code>")
        elif part.kind in ("em", "strong"):
            out.append(f"<{part.kind}>{_html_inline(part.parts)}</{part.kind}>")
        elif part.kind == "group":
            out.append(_html_inline(part.parts))
        else:
            assert part.target is not None
            href = part.target.anchor or page_anchor(part.target.page)
            out.append(f'<a href="#{html.escape(href)}">{_html_inline(part.parts)}</a>')
    return "".join(out)


def _html_items(items: Sequence[Item]) -> str:
    return (
        "<ul>"
        + "".join(
            f"<li>{_html_inline(i.content)}{_html_items(i.children) if i.children else ''}</li>"
            for i in items
        )
        + "</ul>"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{_html_inline(block.content)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_html_inline(block.content)}</p>"
    if isinstance(block, Bullets):
        return _html_items(block.items)
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_html_inline(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    inner = "\n".join(_html_block(b) for b in block.blocks)
    return f'<article class="card" id="{html.escape(block.anchor)}">\n{inner}\n</article>'


def to_html(pages: Sequence[Page], *, title: str, preamble: str | None = None) -> str:
    """Every page in one self-contained HTML file (inline style, in-page links, a contents bar)."""
    nav = "".join(f'<li><a href="#{page_anchor(p.path)}">{html.escape(p.title)}</a></li>' for p in pages)
    body = "\n".join(
        f'<section class="page" id="{page_anchor(p.path)}">\n'
        + "\n".join(_html_block(b) for b in p.blocks)
        + "\n</section>"
        for p in pages
    )
    comment = f"\n{preamble}" if preamble else ""
    return (
        f"<!DOCTYPE html>{comment}\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
        f"<nav><strong>{html.escape(title)}</strong><ul>{nav}</ul></nav>\n"
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
