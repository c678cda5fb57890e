"""The document model and its Markdown, HTML and text writers."""

from __future__ import annotations

from ketacds.markup import (
    Bullets,
    Card,
    Heading,
    Item,
    Page,
    Paragraph,
    Table,
    Target,
    code,
    em,
    link,
    strong,
    to_html,
    to_markdown,
    to_text,
)


def test_markdown_escapes_what_markdown_would_read_as_markup():
    """Stars, underscores, brackets, pipes and angle brackets in text stay literal."""
    page = Page("a.md", "A", (Paragraph(("BMI >30 | *not* [bold] a_b",)),))

    assert "BMI \\>30 \\| \\*not\\* \\[bold\\] a\\_b\n" == to_markdown(page)


def test_a_leading_hash_or_dash_is_not_a_heading_or_list():
    """Text that starts like a heading or list item is escaped."""
    page = Page("a.md", "A", (Paragraph(("# not a heading",)), Paragraph(("- not an item",))))

    assert "\\# not a heading\n\n\\- not an item\n" == to_markdown(page)


def test_links_are_relative_to_the_page():
    """A link from valuesets/x.md to rules.md goes up a folder; a link within a page is an anchor."""
    target = Target("rules.md", "kcds-ci-001")
    page = Page("valuesets/x.md", "X", (Paragraph((link(target, code("KCDS-CI-001")),)),))
    same = Page("rules.md", "R", (Paragraph((link(target, "here"),)),))

    assert "[`KCDS-CI-001`](../rules.md#kcds-ci-001)\n" == to_markdown(page)
    assert "[here](#kcds-ci-001)\n" == to_markdown(same)


def test_a_link_without_target_is_its_text():
    """With nowhere to link to, a link is just its content."""
    assert "a b" == to_text((link(None, "a", " b"),))
    assert "x" == link(None, "x")


def test_nested_bullets_tables_cards_and_headings():
    """Each block has its Markdown form; a card and a heading carry their anchors."""
    page = Page(
        "p.md",
        "P",
        (
            Heading(2, ("Title",), "t"),
            Card("c", (Bullets((Item(("one",), (Item(("two",)),)),)),)),
            Table(("a", "b"), (((strong("x"),), (em("y"),)),)),
        ),
    )

    assert (
        '<!-- x -->\n\n<a id="t"></a>\n\n## Title\n\n<a id="c"></a>\n\n- one\n  - two\n\n'
        "| a | b |\n|---|---|\n| **x** | *y* |\n"
    ) == to_markdown(page, preamble="<!-- x -->")


def test_html_links_become_in_page_anchors():
    """In the single HTML file a link to another page's anchor is an in-page link; text is escaped."""
    pages = [
        Page("index.md", "Index", (Paragraph((link(Target("rules.md", "r1"), "<rule>"),)),)),
        Page(
            "rules.md",
            "Rules",
            (Card("r1", (Heading(3, ("R1",)),)), Paragraph((link(Target("index.md"), "home"),))),
        ),
    ]

    html = to_html(pages, title="T & U")

    assert '<a href="#r1">&lt;rule&gt;</a>' in html
    assert '<a href="#page-index">home</a>' in html
    assert '<section class="page" id="page-rules">' in html
    assert "<title>T &amp; U</title>" in html
