"""The repository explains itself: nothing in it points outside it, and every docs link resolves.

- No file cites a path outside the repository (`../shared/...`, design notes that are not
  here): a contributor who clones the repository must be able to follow every pointer. What
  the code relies on is written in the repository's own docs (docs/design/ and the rest).
- Every relative link of a Markdown file leads to a file of the repository, and its `#anchor`,
  when it has one, to a heading of that file.
- Every `docs/<...>.md` a file names (a code comment, a message, a docstring) exists.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tests.support.repo_files import ROOT, repository_files, text_of

THIS_FILE = Path(__file__).resolve()
# A path out of the repository, or a design note by a name no file of the repository has.
# The benchmark peer's binary is looked up beside the checkout (`../shared/peers/`): a machine
# path a tool reads, never a document a reader must follow.
OUTSIDE = re.compile(r"\.\./shared\b(?!/peers/)|\bshared/design\b")
UPPERCASE_MD = re.compile(r"\b[A-Z][A-Z_]*\.md\b")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS_PATH = re.compile(r"(?<![\w./-])(docs/[\w./-]*?\.md)\b")
FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)


def texts() -> dict[Path, str]:
    out = {}
    for path in repository_files():
        text = text_of(path)
        if text is not None and path != THIS_FILE:
            out[path] = text
    return out


def where(path: Path, text: str, at: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, at) + 1}"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation gone, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: Counter[str] = Counter()
    out = set()
    for line in FENCE.sub("", markdown).splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            base = slug(m.group(1))
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def test_no_file_cites_a_path_outside_the_repository() -> None:
    names = {p.name for p in repository_files()}
    found = []
    for path, text in texts().items():
        for m in OUTSIDE.finditer(text):
            found.append(f"{where(path, text, m.start())}: {m.group()}")
        for m in UPPERCASE_MD.finditer(text):
            if m.group() not in names:
                found.append(f"{where(path, text, m.start())}: {m.group()} (no such file here)")
    assert not found, (
        "these cite files that are not in the repository; write what they rely on into docs/ "
        "(docs/design/ for the wire contract and the API's rules) and cite that:\n"
        + "\n".join(found)
    )


def test_every_markdown_link_resolves() -> None:
    broken = []
    headings: dict[Path, set[str]] = {}
    for path, text in texts().items():
        if path.suffix != ".md":
            continue
        for m in MARKDOWN_LINK.finditer(FENCE.sub("", text)):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.is_relative_to(ROOT) or not dest.exists():
                broken.append(f"{path.relative_to(ROOT)}: ({target}): no such file in the repo")
                continue
            if anchor and dest.suffix == ".md":
                if dest not in headings:
                    headings[dest] = anchors(dest.read_text(encoding="utf-8"))
                if anchor not in headings[dest]:
                    broken.append(
                        f"{path.relative_to(ROOT)}: ({target}): no heading with anchor "
                        f"#{anchor} in {dest.relative_to(ROOT)}"
                    )
    assert not broken, "links that do not resolve:\n" + "\n".join(broken)


def test_every_named_docs_file_exists() -> None:
    missing = [
        f"{where(path, text, m.start())}: {m.group(1)}"
        for path, text in texts().items()
        for m in DOCS_PATH.finditer(text)
        if not (ROOT / m.group(1)).is_file()
    ]
    assert not missing, "files named that do not exist:\n" + "\n".join(missing)


def test_the_checks_find_what_they_look_for() -> None:
    # Each check, given one bad and one good case, tells them apart.
    assert OUTSIDE.search("see ../shared/design/X.md") and not OUTSIDE.search("docs/design/x.md")
    assert OUTSIDE.search("../shared/x.md") and not OUTSIDE.search("../shared/peers/numaflow/")
    assert UPPERCASE_MD.findall("CONTRACT.md and README.md, not api.md") == [
        "CONTRACT.md",
        "README.md",
    ]
    assert DOCS_PATH.findall("(docs/sdk.md, x/docs/y.md)") == ["docs/sdk.md"]
    assert slug("Running: sockets, server-info, environment") == (
        "running-sockets-server-info-environment"
    )
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


HISTORY = re.compile(r"\b[Ii]ssues? \d+\b")
CODE_SUFFIXES = {".py", ".sh", ".pyi", ".c", ".toml", ".yaml", ".yml", ".proto"}


def test_code_cites_no_issue_numbers() -> None:
    """Comments state constraints, not history: an issue number means nothing to a reader of
    the code (docs/decisions.md keeps the history)."""
    found = [
        where(path, text, m.start())
        for path, text in texts().items()
        if path.suffix in CODE_SUFFIXES or path.parent.name == ".ci"
        for m in HISTORY.finditer(text)
    ]
    assert found == [], f"issue numbers in code: {found}"
