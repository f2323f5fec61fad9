#!/usr/bin/env python3
"""perf_fold.py -- where a benchmark phase's time goes, from a perf profile.

    perf record -F 999 --call-graph fp -o cold.data \\
        build-prof/encore-bench b1 --users 100000 --days 2 --cache-mb 8
    ops/bench/perf_fold.py cold.data b1_timed

Counts, over the samples of the main thread (comm encore-bench, or COMM:
`encore` for the child process b3 runs, whose restore is under
enc_changelog_poll) whose stack contains ROOT (b1_timed is B1's timed
phase), each function's inclusive and self share. Needs a build with frame pointers (cmake -DCMAKE_C_FLAGS=
"-fno-omit-frame-pointer -g"); shared libraries without them show as
[unknown] frames under their caller. ops/bench/LIMITS.md's profiles come
from it.
"""
import collections
import subprocess
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: perf_fold.py PERF_DATA ROOT_FUNCTION [COMM]")
    data, root = sys.argv[1], sys.argv[2]
    comm = sys.argv[3] if len(sys.argv) == 4 else "encore-bench"
    out = subprocess.run(["perf", "script", "-i", data, "--comm",
                          comm, "-F", "ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    self_c, incl = collections.Counter(), collections.Counter()
    total = 0
    stack = []
    for line in out.split("\n") + [""]:
        line = line.strip()
        if line:
            parts = line.split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else parts[0])
            continue
        if root in stack:
            total += 1
            self_c[stack[0]] += 1
            for s in set(stack[:stack.index(root)]):
                incl[s] += 1
        stack = []
    if not total:
        sys.exit(f"no samples under {root}")
    print(f"samples under {root}: {total}")
    print("-- inclusive")
    for s, c in incl.most_common(45):
        print(f"{100 * c / total:6.2f}% {s}")
    print("-- self")
    for s, c in self_c.most_common(25):
        print(f"{100 * c / total:6.2f}% {s}")


if __name__ == "__main__":
    main()
