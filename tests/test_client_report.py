"""Self-contained HTML reports of majordomo runs and client batches; a real Chromium renders them."""

import html.parser
import json
import pathlib
import subprocess
import textwrap

import pytest
from support import run_tool

from computefarm.client.report import critical_path
from computefarm.exceptions import UsageError

DODO = textwrap.dedent('''
    def task_a():
        return {"actions": ["sleep 0.3 && touch a.txt"], "targets": ["a.txt"]}

    def task_b():
        return {"actions": ["sleep 0.3 && touch b.txt"], "targets": ["b.txt"],
                "task_dep": ["a"]}

    def task_c():
        return {"actions": ["sleep 0.3 && touch c.txt"], "targets": ["c.txt"],
                "task_dep": ["b"]}

    def task_last():                      # after c through its target (an implicit dep)
        return {"actions": ["sleep 0.2 && touch last.txt"], "file_dep": ["c.txt"],
                "targets": ["last.txt"]}

    def task_side():
        for i in range(4):
            yield {"name": str(i), "actions": ["sleep 0.1"]}

    def task_broken():
        return {"actions": ["for i in 1 2 3; do echo oops line $i; done; exit 3"]}

    def task_all():
        return {"actions": None, "task_dep": ["last", "side", "broken"]}
''')


class Page(html.parser.HTMLParser):
    """The parts of the report a test reads: each task rectangle's classes and
    title, the critical path's items, the failures' text, every link or source."""

    def __init__(self):
        super().__init__()
        self.rects, self.critical, self.failures, self.links = [], [], [], []
        self._in, self._text = None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if name in attrs:
                self.links.append(attrs[name])
        if tag == "rect" and "task" in (attrs.get("class") or "").split():
            self.rects.append([attrs["class"].split(), ""])
        elif tag == "title" and self.rects:
            self._in, self._text = "title", []
        elif tag == "ol" and attrs.get("class") == "critical":
            self._in = "critical"
        elif tag == "li" and self._in == "critical":
            self._text = []
        elif tag == "div" and attrs.get("class") == "failure":
            self._in, self._text = "failure", []

    def handle_endtag(self, tag):
        if tag == "title" and self._in == "title":
            self.rects[-1][1] = "".join(self._text)
            self._in = None
        elif tag == "li" and self._in == "critical":
            self.critical.append("".join(self._text).split()[0])
        elif tag == "ol" and self._in == "critical":
            self._in = None
        elif tag == "div" and self._in == "failure":
            self.failures.append("".join(self._text))
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self._text.append(data)


def test_critical_path_follows_the_dependency_that_ended_last_through_groups():
    spans = {"a": (0, 1), "b": (1, 3), "x": (0, 2.5), "c": (3, 4), "d": (0, 0.5)}
    graph = {"c": ["group", "d"], "group": ["b", "x"], "b": ["a"], "x": []}
    assert critical_path(spans, graph) == ["a", "b", "c"]
    assert critical_path({}, graph) == []
    assert critical_path({"a": (0, 1)}, {"a": ["a"]}) == ["a"]     # a cycle ends it


def test_the_report_shows_slots_critical_path_machines_and_failures_in_chromium(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "dodo.py").write_text(DODO)
    page = tmp_path / "out" / "run.html"
    got = run_tool("majordomo", project, "run", "-c", "--slots", "4", "--report", str(page))
    assert got.returncode == 2, got.stderr     # as doit's: broken failed, so all could not run
    assert "report: %s; timeline: %s" % (page, page.with_suffix(".json")) in got.stderr
    text = page.read_text()
    parsed = Page()
    parsed.feed(text)
    names = sorted(title.splitlines()[0] for _, title in parsed.rects)
    assert names == sorted(["a", "b", "c", "last", "broken"] +
                           ["side:%d" % i for i in range(4)])
    critical = {title.splitlines()[0] for classes, title in parsed.rects
                if "critical" in classes}
    assert critical == {"a", "b", "c", "last"}
    assert parsed.critical == ["a", "b", "c", "last"]
    failed = [title for classes, title in parsed.rects if "failed" in classes]
    assert [t.splitlines()[0] for t in failed] == ["broken"]
    assert len(parsed.failures) == 1 and "broken" in parsed.failures[0]
    assert "oops line 3" in parsed.failures[0]
    assert parsed.links == [] and "url(" not in text and "<script" not in text   # one file

    rendered = in_chromium(page, tmp_path)
    assert sorted(title.splitlines()[0] for _, title in rendered.rects) == names
    assert rendered.critical == ["a", "b", "c", "last"]


def test_a_client_batch_writes_its_report(tmp_path, farm):
    farm.start_worker("shell", slots=2)
    client = farm.client(timeline=True)
    futures = [client.submit("shell", {"cmd": "sleep 0.2"}, label="step %d" % i)
               for i in range(6)]
    futures.append(client.submit("shell", {"cmd": "echo no such input >&2; exit 4"},
                                 label="the odd one"))
    assert [f.result(60).status for f in futures] == ["ok"] * 6 + ["failed"]
    page, trace = client.write_report(str(tmp_path / "batch.html"))
    assert (page, trace) == (str(tmp_path / "batch.html"), str(tmp_path / "batch.json"))
    parsed = Page()
    parsed.feed(pathlib.Path(page).read_text())
    assert sorted(title.splitlines()[0] for _, title in parsed.rects) == sorted(
        ["step %d" % i for i in range(6)] + ["the odd one"])
    assert len(parsed.failures) == 1 and "no such input" in parsed.failures[0]
    assert "exit code 4" in parsed.failures[0]
    assert parsed.critical == []                     # no graph: no critical path
    trace_events = json.loads(pathlib.Path(trace).read_text())["traceEvents"]
    assert len([e for e in trace_events if e["ph"] == "X"]) == 7
    rendered = in_chromium(pathlib.Path(page), tmp_path)
    assert len(rendered.rects) == 7
    without = farm.client()
    with pytest.raises(UsageError, match="keeps no timeline"):
        without.write_report(str(tmp_path / "none.html"))


def in_chromium(page, tmp_path):
    """The report as a real headless Chromium builds it (names resolve nowhere, so
    it must need nothing from a network), parsed; and a screenshot it draws."""
    common = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
              "--user-data-dir=%s" % (tmp_path / "chromium"),
              "--host-resolver-rules=MAP * ~NOTFOUND"]
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    drawn = subprocess.run(common + ["--hide-scrollbars", "--window-size=1300,900",
                                     "--screenshot=%s" % shot, page.as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", drawn.stderr
    rendered = Page()
    rendered.feed(dom.stdout)
    return rendered
