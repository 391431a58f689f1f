#!/usr/bin/env python3
"""Size figures for the Rust workspace: files over a line limit and function lengths.

Usage: scripts/code_stats.py [--root DIR] [--limit 400] [--no-tests] [--top N]

How it counts:
- Files: every `*.rs` under the root, skipping `target/` and hidden directories; a file's
  length is its number of lines (`wc -l`).
- Functions: every `fn NAME` item with a body (trait declarations ending in `;` have none),
  free, in an `impl` or nested in another function (a nested one is also counted inside its
  parent). Its length runs from the line holding `fn` to the line of the brace that closes its
  body, both included; attributes and doc comments above it are not counted. Braces are
  matched on the source with comments, strings (raw and byte strings too) and char literals
  blanked out, so a `{` in a string does not count. Closures are part of their function.
- `--no-tests` leaves out test code: files named `tests.rs` or `*_tests.rs`, files under a
  `tests/` or `benches/` directory, and functions after a `#[cfg(test)]` line in a file.
"""
import argparse
import os
import re
import statistics
import sys

FN_RE = re.compile(r"\bfn\s+[A-Za-z_][A-Za-z0-9_]*")


def rust_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "target" and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)


def blank_non_code(text):
    """The text with comments, strings and char literals replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start, end):
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
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
            blank(i, j)
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i : i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            end = text.find(close, i + m.end())
            end = n if end < 0 else end + len(close)
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 2)
                j = n if j < 0 else j
                blank(i, j + 1)
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def function_lengths(text):
    """(first line, length in lines) of every fn item with a body in one file's source."""
    code = blank_non_code(text)
    found = []
    for m in FN_RE.finditer(code):
        start = m.start()
        j, depth = m.end(), 0
        # The body's `{` is the first one outside the signature's (), <> and [] nesting; a `;`
        # there first means a declaration without a body.
        while j < len(code):
            ch = code[j]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and ch == ";":
                j = -1
                break
            elif depth == 0 and ch == "{":
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        level, k = 0, j
        while k < len(code):
            if code[k] == "{":
                level += 1
            elif code[k] == "}":
                level -= 1
                if level == 0:
                    break
            k += 1
        first = code.count("\n", 0, start) + 1
        last = code.count("\n", 0, k) + 1
        found.append((first, last - first + 1))
    return found


def is_test_file(path):
    parts = path.replace(os.sep, "/").split("/")
    name = parts[-1]
    return name == "tests.rs" or name.endswith("_tests.rs") or "tests" in parts[:-1] or "benches" in parts[:-1]


def percentile(values, p):
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--limit", type=int, default=400, help="file length limit (lines)")
    ap.add_argument("--fn-limit", type=int, default=30, help="function length to count those over")
    ap.add_argument("--no-tests", action="store_true", help="leave test code out")
    ap.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    args = ap.parse_args()
    root = os.path.normpath(args.root)

    long_files, functions, files = [], [], 0
    for path in rust_files(root):
        rel = os.path.relpath(path, root)
        if args.no_tests and is_test_file(rel):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        files += 1
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if lines > args.limit:
            long_files.append((lines, rel))
        cut = None
        if args.no_tests and (m := re.search(r"^\s*#\[cfg\(test\)\]", text, re.M)):
            cut = text.count("\n", 0, m.start()) + 1
        for first, length in function_lengths(text):
            if cut is None or first < cut:
                functions.append((length, rel, first))

    print(f"{files} .rs files{' (tests left out)' if args.no_tests else ''}")
    print(f"files over {args.limit} lines: {len(long_files)}")
    for lines, rel in sorted(long_files, reverse=True):
        print(f"  {lines:5}  {rel}")
    if not functions:
        return 0
    lengths = [f[0] for f in functions]
    over = sum(1 for x in lengths if x > args.fn_limit)
    print(f"functions: {len(lengths)}  p50 {percentile(lengths, 50)}  p90 {percentile(lengths, 90)}  "
          f"max {max(lengths)}  mean {statistics.mean(lengths):.1f}  over {args.fn_limit} lines: {over}")
    print(f"longest {args.top}:")
    for length, rel, first in sorted(functions, key=lambda f: (-f[0], f[1], f[2]))[: args.top]:
        print(f"  {length:5}  {rel}:{first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
