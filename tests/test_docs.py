"""The documentation's links: every relative link and every `#anchor` in README.md,
CONTRIBUTING.md and docs/*.md resolves, by GitHub's rules for heading anchors. Also the README's
promises about itself: it opens with the two commands (run, test), `.ci/run` runs exactly that
test command, and its Documentation list names every file in docs/.

No bridge, no network: these tests take no target fixture, so they run once, not per target.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *([ROOT / "CONTRIBUTING.md"] if (ROOT / "CONTRIBUTING.md").exists() else []),
               *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
# An inline link or image: [text](target "title"); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_TARGET = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"""<a\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks and HTML comments, numbered from 1."""
    text = HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and set(line.strip()) == {fence[0]}:
                fence = None
        else:
            lines.append((number, line))
    return lines


def rendered_text(heading: str) -> str:
    """A heading's text as GitHub renders it: links become their text, code spans their content,
    emphasis and inline HTML tags disappear."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*+)(.+?)\1", r"\2", text)


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation removed except hyphens and
    underscores (letters and digits of any script stay), each space a hyphen."""
    text = rendered_text(text).strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a file offers: its headings' slugs (a repeated slug gets -1, -2, …) and
    explicit `<a id>`/`<a name>` anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = ATX_HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def link_targets(path: Path) -> list[tuple[int, str]]:
    """Every link target in a file's prose (not in code blocks or code spans)."""
    targets: list[tuple[int, str]] = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append((number, definition.group(1)))
            continue
        prose = CODE_SPAN.sub("", line)
        targets += [(number, target) for target in INLINE_LINK.findall(prose)]
        targets += [(number, target) for target in HTML_TARGET.findall(prose)]
    return targets


def broken_links(path: Path) -> list[str]:
    broken = []
    for number, target in link_targets(path):
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue  # another site (http:, https:, mailto:): no network here
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{where}: no such file")
            continue
        if ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{where}: outside the repository")
            continue
        if anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            broken.append(f"{where}: no heading or anchor #{anchor} in {linked.relative_to(ROOT)}")
    return broken


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_github_slug_rules() -> None:
    assert slug("Routing between MCP clients (http mode)") == "routing-between-mcp-clients-http-mode"
    assert slug("How the Anthropic API maps to MCP sampling") == "how-the-anthropic-api-maps-to-mcp-sampling"
    assert slug("`--max-body-bytes` and `SAMPLING2API_*`") == "--max-body-bytes-and-sampling2api_"
    assert slug("Threat model: who attacks a bridge, and what it promises against each") == (
        "threat-model-who-attacks-a-bridge-and-what-it-promises-against-each")
    assert slug("[Tool emulation](api.md#tool-emulation) cost") == "tool-emulation-cost"
    assert slug("Résumé über 2025-11-25") == "résumé-über-2025-11-25"


def test_repeated_headings_and_code_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n## Notes\n```text\n# Not a heading\n```\n## Notes\n## Notes\n<a id=\"here\"></a>\n")
    assert anchors(page) == {"a", "notes", "notes-1", "notes-2", "here"}


def test_a_broken_link_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Present\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#present) [gone](missing.md) [bad](other.md#absent) [self](#nowhere)\n"
                    "`[code](missing.md)` [web](https://example.invalid/x)\n```\n[fenced](missing.md)\n```\n")
    assert [line.split(": ", 1)[1] for line in broken_links(page)] == [
        "missing.md: no such file", "other.md#absent: no heading or anchor #absent in other.md",
        "#nowhere: no heading or anchor #nowhere in page.md"]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```", 2)[1]
    assert "cargo run --release -p sampling2api -- http" in first_block
    assert "./scripts/test-all" in first_block
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert [line for line in ci.splitlines() if line.startswith("exec ")] == ["exec ./scripts/test-all"]


def test_readme_lists_every_doc() -> None:
    readme = ROOT / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for _, target in link_targets(readme)}
    missing = [str(doc.relative_to(ROOT)) for doc in sorted((ROOT / "docs").glob("*.md")) if doc.resolve() not in linked]
    assert missing == [], "README's Documentation list should link these"
