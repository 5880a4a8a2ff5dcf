"""A small data pipeline mixing capabilities and constraints.

    generate:REGION   python  (requires implementation=cpython)  -> data/REGION.csv
    sort:REGION       shell   (requires platform=linux-x86_64)   -> work/REGION.sorted.csv
    totals:REGION     shell   awk per-product totals             -> work/REGION.totals.csv
    busiest           shell   awk busiest day per region         -> work/busiest.csv
    ranking           shell   sort -m | awk | sort, all regions  -> work/ranking.csv
    count             shell   wc -l of the raw files             -> work/counts.txt
    report            python  everything above + the values the
                              generate tasks returned (getargs)  -> report.md

``tools`` is a setup task of every shell task: it checks that the tools exist,
and runs only when some shell task has work to do.

    doit run          # or: majordomo run
    doit clean

Command lines are relative to this directory (where doit and majordomo run
them); python actions resolve paths against it explicitly. Shell steps write a
temporary file named after the shell's pid and rename it, so a retried attempt
never collides with a previous one and never leaves half a target behind.
"""

import os
import random

from doit.tools import config_changed

DOIT_CONFIG = {
    "default_tasks": ["report"],
    "verbosity": 1,
}

HERE = os.path.dirname(os.path.abspath(__file__))

SEED = 20240611
DAYS = 90
REGIONS = [("north", 240, 1.00), ("south", 180, 0.95), ("east", 300, 1.05), ("west", 210, 1.10)]
PRODUCTS = [("anvil", 4999), ("bolt", 35), ("cable", 1250), ("drill", 8900), ("epoxy", 799),
            ("file", 1099), ("gasket", 249), ("hammer", 2399), ("insulator", 410),
            ("jack", 5600), ("knob", 150), ("lever", 1875)]
GENERATOR_VERSION = 1

PYTHON_META = {"capability": "python", "requires": {"implementation": "cpython"}, "timeout": 60}
SHELL_META = {"capability": "shell", "requires": {"platform": "linux-x86_64"}, "timeout": 60}

SORT = "LC_ALL=C sort -t, -k3,3 -k1,1n"   # by product, then day: what totals.awk needs
REPORT = "report.md"


def _path(relative):
    return os.path.join(HERE, relative)


def _write_atomically(relative, text):
    final = _path(relative)
    os.makedirs(os.path.dirname(final) or HERE, exist_ok=True)
    tmp = "%s.tmp.%d" % (final, os.getpid())
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, final)


def _to_file(command, target):
    """Shell: run command into target through a pid-named temporary file."""
    tmp = target + ".tmp.$$"
    return ("mkdir -p %s && { %s; } > %s && mv -f %s %s || { rm -f %s; exit 1; }"
            % (os.path.dirname(target), command, tmp, tmp, target, tmp))


def raw(region):
    return "data/%s.csv" % region


def sorted_file(region):
    return "work/%s.sorted.csv" % region


def totals_file(region):
    return "work/%s.totals.csv" % region


# ---------------------------------------------------------------- python steps

def generate(region, index, rows, price_factor, targets):
    """Write deterministic sales rows for one region; return their totals,
    which doit saves and the report task receives through getargs."""
    rng = random.Random(SEED * 100 + index)
    lines = ["day,region,product,quantity,unit_cents"]
    units = revenue = 0
    for _ in range(rows):
        day = 1 + int(rng.random() * DAYS)
        product, base = PRODUCTS[int(rng.random() * len(PRODUCTS))]
        quantity = 1 + int(rng.random() * 12)
        unit_cents = int(base * price_factor * (90 + int(rng.random() * 21)) / 100)
        lines.append("%d,%s,%s,%d,%d" % (day, region, product, quantity, unit_cents))
        units += quantity
        revenue += quantity * unit_cents
    _write_atomically(targets[0], "\n".join(lines) + "\n")
    return {"rows": rows, "units": units, "revenue_cents": revenue}


def _money(cents):
    return "%d.%02d" % divmod(cents, 100)


def _read_csv(relative):
    with open(_path(relative), encoding="utf-8") as handle:
        return [line.rstrip("\n").split(",") for line in handle if line.strip()]


def write_report(rows, units, revenue_cents, targets):
    """report.md from the shell outputs, cross-checked with what generate returned."""
    regions = [name for name, _, _ in REGIONS]
    counts = {}
    for fields in (line.split() for line in open(_path("work/counts.txt"), encoding="utf-8")):
        counts[fields[1]] = int(fields[0])
    busiest = {fields[0]: (int(fields[1]), int(fields[2]))
               for fields in _read_csv("work/busiest.csv")}

    problems = []
    out = ["# Sales report", "",
           "%d regions, %d sales rows over %d days (seed %d)."
           % (len(regions), sum(rows[r] for r in regions), DAYS, SEED), "",
           "## Regions", "",
           "| region | rows | units | revenue | most units | busiest day (units) |",
           "|--------|-----:|------:|--------:|--------------|--------------------:|"]
    for region in regions:
        totals = _read_csv(totals_file(region))
        t_rows = sum(int(f[1]) for f in totals)
        t_units = sum(int(f[2]) for f in totals)
        t_revenue = sum(int(f[3]) for f in totals)
        best = max(totals, key=lambda f: (int(f[2]), f[0]))[0]
        day, day_units = busiest[region]
        out.append("| %s | %d | %d | %s | %s | %d (%d) |"
                   % (region, t_rows, t_units, _money(t_revenue), best, day, day_units))
        if (t_rows, t_units, t_revenue) != (rows[region], units[region], revenue_cents[region]):
            problems.append("%s: awk totals %r, generate returned %r" % (
                region, (t_rows, t_units, t_revenue),
                (rows[region], units[region], revenue_cents[region])))
        if counts.get(raw(region)) != rows[region] + 1:
            problems.append("%s: wc -l counted %r lines for %d rows + header"
                            % (region, counts.get(raw(region)), rows[region]))

    out += ["", "## Products, all regions", "",
            "| rank | product | rows | units | revenue |",
            "|-----:|---------|-----:|------:|--------:|"]
    ranking = _read_csv("work/ranking.csv")
    for rank, (product, n, q, cents) in enumerate(ranking, 1):
        out.append("| %d | %s | %s | %s | %s |" % (rank, product, n, q, _money(int(cents))))
    if sum(int(f[3]) for f in ranking) != sum(revenue_cents[r] for r in regions):
        problems.append("ranking revenue does not add up to the generated revenue")

    out += ["", "## Checks", "",
            "- per-region totals from `sort | awk` equal the totals `generate` returned",
            "- `wc -l` counts one header line plus the generated rows in each file",
            "- the merged ranking adds up to the generated revenue",
            "", "Result: %s" % ("OK" if not problems else "FAILED"), ""]
    if problems:
        raise RuntimeError("report checks failed:\n" + "\n".join(problems))
    _write_atomically(targets[0], "\n".join(out))


# ---------------------------------------------------------------- tasks

def task_tools():
    """Setup: the shell tools the pipeline needs are installed."""
    return {
        "actions": ["command -v sort >/dev/null && command -v awk >/dev/null"
                    " && command -v wc >/dev/null && command -v tail >/dev/null"],
        "meta": dict(SHELL_META),
    }


def task_generate():
    """Sales rows per region (python, CPython only: random's exact sequence)."""
    for index, (region, rows, price_factor) in enumerate(REGIONS):
        yield {
            "name": region,
            "actions": [(generate, [region, index, rows, price_factor])],
            "targets": [raw(region)],
            "uptodate": [config_changed({
                "seed": SEED, "rows": rows, "factor": price_factor, "days": DAYS,
                "products": PRODUCTS, "version": GENERATOR_VERSION})],
            "meta": dict(PYTHON_META),
            "clean": True,
        }


def task_sort():
    """Drop the header and sort each region by product, then day."""
    for region, _, _ in REGIONS:
        yield {
            "name": region,
            "actions": [_to_file("tail -n +2 %s | %s" % (raw(region), SORT),
                                 sorted_file(region))],
            "file_dep": [raw(region)],
            "targets": [sorted_file(region)],
            "setup": ["tools"],
            "meta": dict(SHELL_META),
            "clean": True,
        }


def task_totals():
    """Per-product totals of each region (awk over the sorted rows)."""
    for region, _, _ in REGIONS:
        yield {
            "name": region,
            "actions": [_to_file("awk -f scripts/totals.awk %s" % sorted_file(region),
                                 totals_file(region))],
            "file_dep": ["scripts/totals.awk", sorted_file(region)],
            "targets": [totals_file(region)],
            "setup": ["tools"],
            "meta": dict(SHELL_META),
            "clean": True,
        }


def task_busiest():
    """The day with the most units sold, per region."""
    commands = " && ".join("tail -n +2 %s | awk -f scripts/busiest.awk" % raw(region)
                           for region, _, _ in REGIONS)
    return {
        "actions": [_to_file(commands, "work/busiest.csv")],
        "file_dep": ["scripts/busiest.awk"] + [raw(region) for region, _, _ in REGIONS],
        "targets": ["work/busiest.csv"],
        "setup": ["tools"],
        "meta": dict(SHELL_META),
        "clean": True,
    }


def task_ranking():
    """Merge the sorted regions, total per product, rank by revenue."""
    merged = "%s -m %s" % (SORT, " ".join(sorted_file(r) for r, _, _ in REGIONS))
    return {
        "actions": [_to_file("%s | awk -f scripts/totals.awk | LC_ALL=C sort -t, -k4,4nr -k1,1"
                             % merged, "work/ranking.csv")],
        "file_dep": ["scripts/totals.awk"] + [sorted_file(r) for r, _, _ in REGIONS],
        "targets": ["work/ranking.csv"],
        "setup": ["tools"],
        "meta": dict(SHELL_META),
        "clean": True,
    }


def task_count():
    """Line counts of the raw files (wc -l)."""
    files = " ".join(raw(region) for region, _, _ in REGIONS)
    return {
        "actions": ["mkdir -p work && wc -l %s > %%(targets)s.tmp.$$"
                    " && mv -f %%(targets)s.tmp.$$ %%(targets)s" % files],
        "file_dep": [raw(region) for region, _, _ in REGIONS],
        "targets": ["work/counts.txt"],
        "setup": ["tools"],
        "meta": dict(SHELL_META),
        "clean": True,
    }


def task_report():
    """report.md, checked against the values generate returned."""
    return {
        "actions": [write_report],
        "file_dep": ([totals_file(r) for r, _, _ in REGIONS]
                     + ["work/busiest.csv", "work/ranking.csv", "work/counts.txt"]),
        # {region: value} dicts gathered from the generate:REGION return values
        "getargs": {"rows": ("generate", "rows"),
                    "units": ("generate", "units"),
                    "revenue_cents": ("generate", "revenue_cents")},
        "targets": [REPORT],
        "meta": {"capability": "python", "priority": 5, "timeout": 60},
        "clean": True,
    }
