#!/usr/bin/env python3
"""Register / spill table from `nvcc -Xptxas -v` output, and the spill gate of CI.

    python scripts/ptxas_report.py LOG [LOG ...] [--hot REGEX] [--expect-archs 75,80,...] [--json OUT]

LOG: files or directories (every *.ptxas.log inside, as scripts/ptxas_log.sh keeps them).
Prints one markdown row per kernel instantiation and architecture. Exits 1 when a hot
kernel (name matching --hot; default: every dcn_ kernel) spills (spill stores or loads
> 0) or uses a stack frame, when an expected architecture has no entry for some kernel, or
when nothing was parsed at all.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_[0-9a-z]+)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")


@dataclass
class Entry:
    mangled: str
    arch: str
    kernel: str = ""
    registers: int = -1
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    source: str = ""

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


def demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("c++filt") or shutil.which("cu++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=False).stdout
    lines = out.splitlines()
    return {n: (lines[i] if i < len(lines) else n) for i, n in enumerate(names)}


def short_name(demangled: str) -> str:
    """'void dcn::cuda::(anonymous namespace)::dcn_deform_im2col_kernel<__half, int>(...)' -> 'dcn_deform_im2col_kernel<__half, int>'."""
    s = demangled
    if s.startswith("void "):
        s = s[5:]
    depth = 0
    for i, ch in enumerate(s):  # cut the parameter list: first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not s.startswith("(anonymous", i):
            s = s[:i]
            break
    s = re.sub(r"^.*::", "", s.split("<", 1)[0]) + ("<" + s.split("<", 1)[1] if "<" in s else "")
    return re.sub(r"\bint\b", "int32_t", s.replace("long", "int64_t"))


def parse(text: str, source: str = "") -> list[Entry]:
    entries: list[Entry] = []
    current: Entry | None = None
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            current = Entry(mangled=m.group(1), arch=m.group(2), source=source)
            entries.append(current)
            continue
        if current is None:
            continue
        m = FRAME.search(line)
        if m:
            current.stack, current.spill_stores, current.spill_loads = (int(g) for g in m.groups())
            continue
        m = USED.search(line)
        if m:
            current.registers = int(m.group(1))
    return entries


def collect(paths: list[str]) -> list[Entry]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.ptxas.log")) if p.is_dir() else [p])
    entries: list[Entry] = []
    for f in files:
        entries.extend(parse(f.read_text(errors="replace"), source=f.name))
    names = demangle(sorted({e.mangled for e in entries}))
    for e in entries:
        e.kernel = short_name(names.get(e.mangled, e.mangled))
    arch_key = lambda a: int(re.sub(r"\D", "", a) or 0)  # noqa: E731
    entries.sort(key=lambda e: (e.kernel, arch_key(e.arch)))
    return entries


def table(entries: list[Entry]) -> str:
    rows = ["| kernel | arch | registers | stack (B) | spill stores (B) | spill loads (B) |",
            "|---|---|---:|---:|---:|---:|"]
    for e in entries:
        rows.append(f"| `{e.kernel}` | {e.arch} | {e.registers} | {e.stack} | {e.spill_stores} | {e.spill_loads} |")
    return "\n".join(rows)


def check(entries: list[Entry], hot: str, expect_archs: list[str]) -> list[str]:
    problems: list[str] = []
    if not entries:
        return ["no ptxas entries parsed (was -Xptxas -v passed? were the logs kept?)"]
    hot_re = re.compile(hot)
    for e in entries:
        if hot_re.search(e.kernel) and (e.spills or e.stack > 0):
            problems.append(f"{e.kernel} on {e.arch}: {e.spill_stores} B spill stores, {e.spill_loads} B spill loads, "
                            f"{e.stack} B stack frame, expected 0 (hot kernel)")
    if expect_archs:
        kernels = sorted({e.kernel for e in entries})
        have = {(e.kernel, e.arch) for e in entries}
        for k in kernels:
            for a in expect_archs:
                if (k, f"sm_{a}") not in have:
                    problems.append(f"{k}: no ptxas entry for sm_{a}, expected one per architecture")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+", help="ptxas log files or directories of *.ptxas.log")
    ap.add_argument("--hot", default=r"^dcn_", help="regex of kernels that must not spill (default: ^dcn_)")
    ap.add_argument("--expect-archs", default="", help="comma-separated sm numbers every kernel must have")
    ap.add_argument("--json", help="also write the entries and problems as JSON here")
    args = ap.parse_args(argv)
    entries = collect(args.logs)
    expect = [a.strip() for a in args.expect_archs.split(",") if a.strip()]
    problems = check(entries, args.hot, expect)
    print(table(entries))
    if args.json:
        Path(args.json).write_text(json.dumps({"entries": [asdict(e) for e in entries], "problems": problems},
                                              indent=1))
    for p in problems:
        print(f"ptxas_report: FAIL: {p}", file=sys.stderr)
    if not problems:
        print(f"ptxas_report: OK: {len(entries)} kernel/arch entries, no spills in hot kernels", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
