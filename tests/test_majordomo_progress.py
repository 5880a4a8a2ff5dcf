"""majordomo's progress line on a real terminal (a pty, rendered by pyte)."""

import re
import subprocess
import sys
import textwrap

from support import Terminal

DODO = textwrap.dedent('''
    DOIT_CONFIG = {"verbosity": 2}

    def task_gen():
        for i in range(30):
            yield {"name": str(i), "actions": ["sleep 0.1; echo out-%d" % i]}

    def task_stable():
        return {"actions": ["cp input.txt stable.txt"], "file_dep": ["input.txt"],
                "targets": ["stable.txt"]}

    def task_all():
        return {"actions": None, "task_dep": ["gen", "stable"]}
''')
PROGRESS = re.compile(r"majordomo: (\d+)/(\d+) done, (\d+) running, (\d+) queued, (\d+) failed")


def test_the_progress_line_counts_right_and_never_garbles_the_screen(tmp_path):
    (tmp_path / "dodo.py").write_text(DODO)
    (tmp_path / "input.txt").write_text("x\n")
    majordomo = [sys.executable, "-m", "computefarm.majordomo", "run", "--slots", "2"]
    first = subprocess.run(majordomo + ["stable"], cwd=tmp_path, capture_output=True)
    assert first.returncode == 0, first.stderr       # now up to date: not in the total
    terminal = Terminal(majordomo + ["all"], cwd=tmp_path, columns=200, lines=200)
    try:
        assert terminal.wait(120) == 0, "\n".join(terminal.lines())
    finally:
        terminal.close()
    raw = bytes(terminal.output)
    drawn = [PROGRESS.match(part) for part in raw.decode().split("\r\x1b[K")]
    counts = [tuple(map(int, m.groups())) for m in drawn if m]
    assert counts, raw                                 # the line was shown
    assert {total for _, total, _, _, _ in counts} == {30}     # the group, up to date: out
    done = [d for d, _, _, _, _ in counts]
    assert done == sorted(done) and done[-1] <= 30
    lines = terminal.lines()
    for i in range(30):                              # every output line whole, on its own
        assert ("out-%d" % i) in lines, lines
    assert not [line for line in lines if "majordomo:" in line and "out-" in line]
    assert not [line for line in lines if PROGRESS.search(line)]   # cleared at the end
    assert "majordomo: 30 task(s) done, 0 failed" in "\n".join(lines)
