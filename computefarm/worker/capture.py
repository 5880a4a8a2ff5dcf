"""What a run printed: OUTPUT items for the TaskManager, and the tail its RESULT carries.

A run has ``captured`` (pieces ``{"stream", "lines", "records"?}``),
``captured_size`` (characters kept) and ``truncated`` (lines dropped from the
front). The tail is about ``RESULT_OUTPUT_MAX`` characters, trimmed from the
front once it holds twice that, so a flood costs linear time; consecutive lines
of one stream share a piece, and there are never more pieces or records than a
RESULT may carry.
"""

from .. import defaults
from ..wire import protocol


def output_items(run, lines, wall_time):
    """OUTPUT items for ``lines`` ((stream, line) pairs) of ``run``; keeps their tail."""
    by_stream = {}
    for stream, line in lines:
        by_stream.setdefault(stream, []).append(line)
    items = []
    for stream, text in by_stream.items():
        pieces, records, start = [], [], 0
        for index, line in enumerate(text):
            record = run.plugin.records(stream, line)
            if record is None:
                continue
            if len(records) == protocol.MAX_RECORDS:   # the wire's limit per item
                pieces.append((text[start:index], records))
                records, start = [], index
            record["index"] = index - start
            records.append(record)
        pieces.append((text[start:] if start else text, records))
        for piece, piece_records in pieces:
            item = {"id": run.task_id, "attempt": run.attempt, "stream": stream,
                    "lines": piece, "level": run.plugin.default_level(stream),
                    "time": wall_time}
            tail = {"stream": stream, "lines": piece}
            if piece_records:
                item["records"] = tail["records"] = piece_records
            items.append(item)
            keep(run, tail)
    return items


def keep(run, tail):
    """Add ``tail`` (a piece of output) to the run's captured tail."""
    captured = run.captured
    records = tail.get("records") or ()
    if captured and captured[-1]["stream"] == tail["stream"]:
        last = captured[-1]
        offset = len(last["lines"])
        last["lines"].extend(tail["lines"])
        if records:
            kept = last.setdefault("records", [])
            kept.extend(dict(record, index=record["index"] + offset) for record in records)
            del kept[:-protocol.MAX_RECORDS]     # the wire's limit: the latest stay
    else:
        piece = {"stream": tail["stream"], "lines": list(tail["lines"])}
        if records:
            piece["records"] = list(records)
        captured.append(piece)
    run.captured_size += _size(tail["lines"])
    if run.captured_size > 2 * defaults.RESULT_OUTPUT_MAX or \
            len(captured) > protocol.MAX_TAILS:
        trim(run)


def trim(run):
    """Cut the captured tail down to about ``RESULT_OUTPUT_MAX`` characters."""
    captured = run.captured
    if len(captured) > protocol.MAX_TAILS:      # merge the older half, by stream
        half, merged = protocol.MAX_TAILS // 2, {}
        for piece in captured[:half]:
            into = merged.setdefault(piece["stream"], {"stream": piece["stream"],
                                                       "lines": []})
            offset = len(into["lines"])
            into["lines"].extend(piece["lines"])
            if piece.get("records"):
                into.setdefault("records", []).extend(
                    dict(r, index=r["index"] + offset) for r in piece["records"])
        for piece in merged.values():
            if piece.get("records"):
                del piece["records"][:-protocol.MAX_RECORDS]
        captured[:half] = list(merged.values())
    while len(captured) > 1 and \
            run.captured_size - _size(captured[0]["lines"]) >= defaults.RESULT_OUTPUT_MAX:
        dropped = captured.pop(0)
        run.captured_size -= _size(dropped["lines"])
        run.truncated += len(dropped["lines"])
    first = captured[0]
    cut, excess = 0, run.captured_size - defaults.RESULT_OUTPUT_MAX
    while excess > 0 and cut < len(first["lines"]) - 1:
        excess -= len(first["lines"][cut]) + 1
        cut += 1
    if cut:
        run.captured_size -= _size(first["lines"][:cut])
        run.truncated += cut
        first["lines"] = first["lines"][cut:]
        records = [dict(r, index=r["index"] - cut) for r in first.get("records") or ()
                   if r["index"] >= cut]
        if records:
            first["records"] = records
        else:
            first.pop("records", None)


def _size(lines):
    return sum(len(line) + 1 for line in lines)
