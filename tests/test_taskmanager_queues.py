"""A queue: exactly (-priority, submission) order, late arrivals included; dead
entries skipped and compacted."""

from computefarm.taskmanager.queues import Queue
from computefarm.taskmanager.tasks import DONE, QUEUED, Task, queue_key


def task(seq, priority=0):
    t = Task("t%d" % seq, None, queue_key("shell", None), seq)
    t.priority = priority
    t.state = QUEUED
    return t


def drain(queue):
    out = []
    while True:
        t = queue.pop()
        if t is None:
            return out
        t.state = "running"
        out.append(t.id)


def test_priority_then_submission_order_with_late_arrivals():
    queue = Queue(queue_key("shell", None))
    tasks = [task(seq, priority) for seq, priority in
             ((5, 0), (6, 2), (7, 0), (8, 2))]
    for t in tasks:
        queue.push(t)
    late = [task(1, 0), task(3, 2)]            # requeued: submitted before the others
    for t in late:
        queue.push(t)
    assert queue.live == 6 and queue.head() == (-2, 3)
    assert drain(queue) == ["t3", "t6", "t8", "t1", "t5", "t7"]
    assert queue.live == 0 and queue.entries == 0


def test_discarded_tasks_are_skipped_and_compacted_away():
    queue = Queue(queue_key("shell", None))
    tasks = [task(seq) for seq in range(3000)]
    for t in tasks:
        queue.push(t)
    for t in tasks[:2500]:                      # cancelled while queued
        queue.discard(t)
        t.state = DONE
    assert queue.live == 500
    assert queue.entries < 2 * queue.live + 1024 + 1   # compacted on the way
    assert drain(queue) == ["t%d" % seq for seq in range(2500, 3000)]


def test_a_task_requeued_into_its_queue_is_popped_once():
    queue = Queue(queue_key("shell", None))
    first, second = task(1), task(2)
    queue.push(first)
    queue.push(second)
    queue.discard(first)                        # adopted by a worker's hello...
    first.state = "running"
    first.state = QUEUED                        # ...then requeued when it was lost
    queue.push(first)
    assert drain(queue) == ["t1", "t2"]
    assert queue.live == 0
