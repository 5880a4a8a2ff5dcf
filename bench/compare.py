"""Run a benchmark of this tree and of another checkout alternately; medians side by side.

    python bench/compare.py --baseline DIR [-n 3] [--bench core_bench.py] -- [bench options]

The machines here are shared and noisy: each round runs the baseline and this
tree one after the other (the order alternating between rounds), and the table
gives the median of each figure the benchmark printed (every number on its lines,
keyed by the text around it), and the ratio this tree / baseline. The baseline's
own copy of the benchmark runs with PYTHONPATH=DIR, so its processes import that
tree; both use this virtual environment.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def figures(output):
    """{label: value} for every number printed: the label is the line with each
    number replaced by # and the number's index, so lines of the same shape match."""
    found = {}
    for line in output.splitlines():
        numbers = NUMBER.findall(line)
        shape = NUMBER.sub("#", line.strip())
        for index, number in enumerate(numbers):
            found["%s [%d]" % (shape, index)] = float(number)
    return found


def run(tree, bench, options, timeout):
    env = dict(os.environ)
    if tree != HERE:
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, os.path.join(tree, "bench", bench)] + options,
                         capture_output=True, text=True, timeout=timeout, env=env,
                         cwd="/tmp")
    if out.returncode != 0:
        raise SystemExit("%s in %s failed:\n%s" % (bench, tree, out.stderr[-2000:]))
    return figures(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="DIR")
    parser.add_argument("-n", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--bench", default="core_bench.py")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("options", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    options = [o for o in args.options if o != "--"]
    trees = {"baseline": os.path.abspath(args.baseline), "this tree": HERE}
    results = {name: [] for name in trees}
    for round_ in range(args.n):
        order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
        for name in order:
            results[name].append(run(trees[name], args.bench, options, args.timeout))
            print("round %d: %s done" % (round_ + 1, name), file=sys.stderr, flush=True)
    labels = [k for k in results["this tree"][0] if all(k in r for rs in results.values()
                                                        for r in rs)]
    print("%-78s %12s %12s %7s" % ("figure (median of %d)" % args.n, "baseline", "this tree",
                                   "ratio"))
    for label in labels:
        base = statistics.median(r[label] for r in results["baseline"])
        this = statistics.median(r[label] for r in results["this tree"])
        ratio = "%.2f" % (this / base) if base else "-"
        print("%-78s %12g %12g %7s" % (label[:78], base, this, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
