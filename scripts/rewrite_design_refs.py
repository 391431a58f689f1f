#!/usr/bin/env python3
"""Turn citations of the outside design document into citations of docs/ in this repository.

The code used to cite sections of a design document that is not in the repository
(the word DESIGN, then a section sign and a number). This rewrites every such citation into
the file and anchor of docs/ that now holds the rule, from SECTIONS below:

    (DESIGN <s>4)            ->  (docs/contracts.md#market)
    DESIGN <s>7, <s>8        ->  docs/contracts.md#deployments, #snapshots
    DESIGN <s>4–<s>6, <s><s>1-2, <s>3/<s>11, <s>4.2, <s>4's  (lists, ranges, subsections)

(<s> stands for the section sign.) In `*.rs` files only comments are rewritten, including a
citation wrapped over two comment lines and a bare `(<s>16)` without the word (but not
`RFC 9110 <s>11.1`); in the other text files of the tree (scripts, config samples, systemd
units, the dashboard) every citation is. README.md is left alone unless --readme is given.
A Rust comment line that grows past --width is re-wrapped with the rest of its paragraph
(other files keep their lines: config samples align their comments in columns).

Idempotent: a second run finds nothing left to rewrite. Usage:

    scripts/rewrite_design_refs.py [--root DIR] [--dry-run] [--readme] [--width 100]

--dry-run lists the files it would change. Refuses to run (exit 2) when an anchor of the
tables is no heading of its docs file. Exits 1 when a citation is left that it could not
rewrite (a section missing from SECTIONS, or one inside a Rust string), naming each.
"""
import argparse
import os
import re
import sys

SIGN = "\u00a7"
C, A = "docs/contracts.md", "docs/architecture.md"

# Section of the outside design -> (docs file, anchor), then optional refinements: the first
# pattern found (case-insensitive) in the citation's line or the one before picks its anchor instead.
SECTIONS = {
    1: ((A, "parts"), []),
    2: ((C, "hosts-and-units"), []),
    3: ((C, "placement"), []),
    4: ((C, "market"), []),
    5: ((C, "lifecycle"), [(r"billing|ledger|overdue|meter|charg|money|balance", "billing")]),
    6: ((C, "guest-socket"), []),
    7: ((C, "deployments"), []),
    8: ((C, "snapshots"), []),
    9: ((A, "agent-link"), []),
    10: ((A, "store"), []),
    11: ((C, "http-api"), [(r"payment|balance|ledger|account", "billing")]),
    12: ((C, "commands"), [(r"config|toml|\[[a-z_]+\]|duration|humantime", "config")]),
    13: ((A, "dependencies"), []),
    14: ((C, "guests"), []),
    15: (
        (C, "limits"),
        [
            (r"stream|0600|0700|\bmodes?\b", "limits"),
            (r"retention|retain|prune|forgot|\bkept\b", "retention"),
            (r"token|join|certificate|revok", "tokens"),
            (r"crash.loop|backoff", "deployments"),
            (r"payment|balance|overflow|ledger", "billing"),
        ],
    ),
    16: ((C, "failures-and-quotas"), []),
    17: ((C, "messages"), []),
    18: ((C, "serving"), []),
    19: ((C, "operating-hosts"), []),
    # Sections of the outside design not built when this table was written; should code cite
    # them, these are the closest places in docs/.
    20: ((A, "store"), []),
    21: ((C, "guests"), []),
    22: ((C, "lifecycle"), []),
    23: ((C, "market"), []),
}
# A subsection that deserves its own anchor: "N.M" -> (file, anchor). Others use section N.
SUBSECTIONS = {}

NUM = r"\d+(?:\.\d+)?"
ONE = rf"{SIGN}{{1,2}}\s?{NUM}(?:\s?[–-]\s?{SIGN}{{0,2}}\s?{NUM})?"
LIST = rf"{ONE}(?:\s?(?:,|/|and|&)\s?{ONE})*"
CITED = re.compile(rf"DESIGN(?:\.md)?\s?({LIST})")
# A bare citation: the section sign after "(", a space or a comment marker, not after a
# number (`RFC 9110 §11.1` cites another document).
BARE = re.compile(rf"(?<![0-9] )(?<=[(\s/!#])({LIST})")
WRAPPED = re.compile(rf"[ \t]*(\(?)DESIGN(?:\.md)?[ \t]*\n([ \t]*(?://[/!]?|#)[ \t]*)(?={SIGN})")
TEXT_EXTENSIONS = (".toml", ".sh", ".py", ".service", ".js", ".html", ".css", ".yml", ".yaml", ".md", ".txt")
SELF = os.path.abspath(__file__)


def sections_of(cited):
    """The section keys ("4", "4.2") a citation list names, ranges expanded, in order."""
    keys = []
    for one in re.finditer(ONE, cited):
        nums = re.findall(NUM, one.group(0))
        if len(nums) == 2 and "." not in nums[0] + nums[1]:
            keys += [str(n) for n in range(int(nums[0]), int(nums[1]) + 1)]
        else:
            keys += nums
    return keys


def target(key, line):
    """(file, anchor) for one section key, refined by the words of the line it is cited on."""
    if key in SUBSECTIONS:
        return SUBSECTIONS[key]
    main = int(key.split(".")[0])
    if main not in SECTIONS:
        return None
    (file, anchor), refinements = SECTIONS[main]
    for pattern, better in refinements:
        if re.search(pattern, line, re.I):
            return (file, better)
    return (file, anchor)


def citation(cited, line):
    """The docs citation for a citation list, or None when a section is not in the table."""
    targets = []
    for key in sections_of(cited):
        t = target(key, line)
        if t is None:
            return None
        if t not in targets:
            targets.append(t)
    parts, last_file = [], None
    for file, anchor in targets:
        parts.append(f"#{anchor}" if file == last_file else f"{file}#{anchor}")
        last_file = file
    return ", ".join(parts)


def line_around(text, at):
    """The line holding `at` and the one before it: a citation often ends a sentence."""
    start = text.rfind("\n", 0, max(0, text.rfind("\n", 0, at))) + 1
    end = text.find("\n", at)
    return text[start : len(text) if end < 0 else end]


def rewrite_span(text, pattern):
    """Every match of `pattern` (group 1: the section list) replaced by its docs citation."""

    def repl(m):
        new = citation(m.group(1), line_around(text, m.start()))
        return m.group(0) if new is None else new

    return pattern.sub(repl, text)


def comment_spans(text):
    """(start, end) of every comment in Rust source, strings and char literals skipped."""
    spans, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            spans.append((i, end))
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            spans.append((i, j))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i : i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        elif text[i] == "'" and i + 1 < n and text[i + 1] == "\\":
            j = text.find("'", i + 2)
            i = n if j < 0 else j + 1
        elif text[i] == "'" and i + 2 < n and text[i + 2] == "'":
            i += 3
        else:
            i += 1
    return spans


def join_wrapped(text):
    """A citation whose word ends one comment line and whose number starts the next: the
    word goes and the number, rewritten later as a bare citation, keeps an opening paren."""
    return WRAPPED.sub(lambda m: "\n" + m.group(2) + m.group(1), text)


def rewrite_rust(text):
    text = join_wrapped(text)
    out, last = [], 0
    for start, end in comment_spans(text):
        out.append(text[last:start])
        body = rewrite_span(text[start:end], CITED)
        out.append(rewrite_span(body, BARE))
        last = end
    out.append(text[last:])
    return "".join(out)


def rewrite_text(text):
    return rewrite_span(join_wrapped(text), CITED)


PREFIX = re.compile(r"^([ \t]*//[/!]?[ \t]?)(.*)$")
STOP = re.compile(r"^\s*$|^\s*([-*|#>]|```|\d+\.\s)")


def rewrap(old_lines, new_lines, width):
    """New lines with every changed comment line longer than `width` re-wrapped together
    with the rest of its paragraph (lines of the same comment prefix and indent)."""
    changed = {i for i, line in enumerate(new_lines) if i >= len(old_lines) or line != old_lines[i]}
    out, i = [], 0
    while i < len(new_lines):
        line, m = new_lines[i], PREFIX.match(new_lines[i])
        if i not in changed or len(line) <= width or not m or not m.group(2).strip():
            out.append(line)
            i += 1
            continue
        prefix, body = m.group(1), m.group(2)
        lead = body[: len(body) - len(body.lstrip())]
        hang = lead + ("  " if re.match(r"[-*] ", body.lstrip()) else "")
        words, j = body.split(), i + 1
        while j < len(new_lines):
            n = PREFIX.match(new_lines[j])
            if not n or n.group(1) != prefix or STOP.match(n.group(2)):
                break
            if n.group(2)[: len(n.group(2)) - len(n.group(2).lstrip())] != hang:
                break
            words += n.group(2).split()
            j += 1
        current, empty = prefix + lead, True
        for word in words:
            if not empty and len(current) + 1 + len(word) > width:
                out.append(current)
                current, empty = prefix + hang, True
            current += ("" if empty else " ") + word
            empty = False
        out.append(current)
        i = j
    return out


def slug(heading):
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def missing_anchors(root):
    """Targets of the tables that no heading of their docs file makes, as "file#anchor"."""
    targets = {t for (t, _) in SECTIONS.values()} | set(SUBSECTIONS.values())
    targets |= {(t[0], a) for (t, refine) in SECTIONS.values() for (_, a) in refine}
    missing = []
    for file, anchor in sorted(targets):
        try:
            with open(os.path.join(root, file), encoding="utf-8") as f:
                anchors = {slug(m) for m in re.findall(r"^#+\s+(.*)$", f.read(), re.M)}
        except FileNotFoundError:
            anchors = set()
        if anchor not in anchors:
            missing.append(f"{file}#{anchor}")
    return missing


def files(root, readme):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("target", "node_modules") and not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.abspath(path) == SELF:
                continue
            if name == "README.md" and os.path.dirname(os.path.abspath(path)) == os.path.abspath(root) and not readme:
                continue
            if name.endswith(".rs") or name.endswith(TEXT_EXTENSIONS):
                yield path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(SELF), ".."))
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--readme", action="store_true", help="also rewrite the top README.md")
    ap.add_argument("--width", type=int, default=100, help="re-wrap changed comment lines longer than this")
    args = ap.parse_args()
    root = os.path.normpath(args.root)
    missing = missing_anchors(root)
    if missing:
        print("no heading makes these anchors; fix SECTIONS or docs/: " + ", ".join(missing), file=sys.stderr)
        return 2
    changed, left = [], []
    for path in files(root, args.readme):
        try:
            with open(path, encoding="utf-8") as f:
                old = f.read()
        except UnicodeDecodeError:
            continue
        if "DESIGN" not in old and (SIGN not in old or not path.endswith(".rs")):
            continue
        new = rewrite_rust(old) if path.endswith(".rs") else rewrite_text(old)
        if new != old and path.endswith(".rs"):
            new = "\n".join(rewrap(old.split("\n"), new.split("\n"), args.width))
        if new != old:
            changed.append(os.path.relpath(path, root))
            if not args.dry_run:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
        for number, line in enumerate(new.split("\n"), 1):
            if re.search(rf"DESIGN(?:\.md)?\s*{SIGN}", line):
                left.append(f"{os.path.relpath(path, root)}:{number}: {line.strip()}")
    for rel in changed:
        print(("would rewrite " if args.dry_run else "rewrote ") + rel)
    print(f"{len(changed)} files {'to rewrite' if args.dry_run else 'rewritten'}")
    for entry in left:
        print("left (not rewritten): " + entry, file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
