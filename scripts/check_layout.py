#!/usr/bin/env python3
"""Checks the shape of the Rust sources: no import circle between a crate's modules, no
function over 150 lines, no file over 700 lines unless its first comment says why.

Usage: scripts/check_layout.py [--verbose]

- Import circles: module A names module B (`use crate::b`, `crate::b::x`, `super::b`,
  brace groups included; comments and `#[cfg(test)]` code are left out) and B names A.
- Long functions: from the `fn` line to its closing brace, test code included.
- Long files: over 700 lines, a file's first `//!` block must say why, in a line that
  starts with "Why" (as in "Why one file of over 700 lines: ...").

Prints each finding and exits 1 if there is one, else prints a summary and exits 0.
`tests/layout.rs` runs it. No Python packages needed.
"""

import itertools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FN = 150
MAX_FILE = 700


def module_of(src_dir: Path, path: Path) -> str:
    rel = path.relative_to(src_dir).with_suffix("").as_posix().replace("/", "::")
    rel = re.sub(r"(^|::)mod$", "", rel)
    return "" if rel in ("lib", "main") else rel


def strip(text: str) -> str:
    """The code a module compiles outside tests, without comments and strings."""
    text = text.split("#[cfg(test)]")[0]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    # `crate::{a, b::c}` -> `crate::a crate::b::c`
    return re.sub(
        r"\b(crate|super)::\{([^}]*)\}",
        lambda m: " ".join(f"{m.group(1)}::{t.strip()}" for t in m.group(2).split(",") if t.strip()),
        text,
    )


def circles(src_dir: Path) -> list[str]:
    files = {module_of(src_dir, p): strip(p.read_text(encoding="utf-8")) for p in src_dir.rglob("*.rs")}
    mods = set(files)

    def resolve(path: str) -> str:
        parts, best = path.split("::"), ""
        for i in range(1, len(parts) + 1):
            if "::".join(parts[:i]) in mods:
                best = "::".join(parts[:i])
        return best

    def related(a: str, b: str) -> bool:
        return a == b or a.startswith(b + "::") or b.startswith(a + "::")

    deps = {m: set() for m in mods}
    for m, src in files.items():
        parent = "::".join(m.split("::")[:-1])
        for x in re.finditer(r"\bcrate::((?:\w+::)*\w+)", src):
            d = resolve(x.group(1))
            if d and not related(d, m):
                deps[m].add(d)
        for x in re.finditer(r"\bsuper::((?:\w+::)*\w+)", src):
            d = resolve((parent + "::" if parent else "") + x.group(1))
            if d and not related(d, m):
                deps[m].add(d)
    return [f"{a} <-> {b}" for a, b in itertools.combinations(sorted(mods), 2) if b in deps[a] and a in deps[b]]


def long_functions(path: Path) -> list[tuple[int, int, str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"\s*(pub(\([\w:]+\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)", line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
            code = re.sub(r"'(\\.|[^'\\])'", "''", code).split("//")[0]
            for c in code:
                if c == "{":
                    depth, started = depth + 1, True
                elif c == "}":
                    depth -= 1
            if not started and code.strip().endswith(";"):
                break
            if started and depth == 0:
                if j - i + 1 > MAX_FN:
                    found.append((i + 1, j - i + 1, m.group(7)))
                break
    return found


def says_why(path: Path) -> bool:
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.startswith("//!"):
            return False
        if line[3:].strip().startswith("Why"):
            return True
    return False


def main() -> int:
    problems = []
    crates = sorted(p for p in (ROOT / "crates").iterdir() if (p / "src").is_dir())
    sources = [p for c in crates for p in sorted(c.rglob("*.rs"))] + sorted((ROOT / "tests").glob("*.rs"))
    for crate in crates:
        problems += [f"import circle in {crate.name}: {c}" for c in circles(crate / "src")]
    for path in sources:
        rel = path.relative_to(ROOT)
        n = path.read_text(encoding="utf-8").count("\n")
        if n > MAX_FILE and not says_why(path):
            problems.append(f"{rel}: {n} lines, over {MAX_FILE}, and its first comment does not say why")
        for line, length, name in long_functions(path):
            problems.append(f"{rel}:{line}: fn {name} is {length} lines, over {MAX_FN}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"{len(crates)} crates, {len(sources)} files: no import circle, no function over "
          f"{MAX_FN} lines, no file over {MAX_FILE} lines without a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
