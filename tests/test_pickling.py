"""pickling.py: plain data by the standard pickle, the rest by cloudpickle; each
callable pickled once by FarmExecutor and unpickled once per slot."""

import functools
import pickle

from computefarm import pickling
from computefarm.client import FarmExecutor


def test_plain_data_takes_the_standard_pickle_and_the_rest_cloudpickle():
    plain = ((1, 2.5, "x", b"y", None, True), {"k": [1, {"n": (2,)}]})
    assert pickling.dumps(plain) == pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)
    closure = (lambda n: n + 1,)
    assert pickle.loads(pickling.dumps(closure))[0](1) == 2        # cloudpickle's
    large = list(range(20000))                                     # beyond the look
    assert pickle.loads(pickling.dumps(large)) == large
    assert pickle.loads(pickling.dumps({1, 2})) == {1, 2}           # a set: not plain


def test_a_callable_is_pickled_once_while_it_lives():
    pickles = pickling.FunctionPickles()
    function = lambda: 1                                           # noqa: E731
    first, again = pickles.dumps(function), pickles.dumps(function)
    assert first is again

    class Unhashable:
        __hash__ = None

        def __call__(self):
            return 2

    class NoWeakReference:
        __slots__ = ()

        def __call__(self):
            return 3
    assert pickle.loads(pickles.dumps(Unhashable()))() == 2
    assert pickle.loads(pickles.dumps(NoWeakReference()))() == 3
    assert len(pickles.cache) == 1
    del function
    assert len(pickles.cache) == 0                                 # gone with it


def test_a_slot_unpickles_a_function_once_and_forgets_the_least_used():
    loaded = pickling.LoadedFunctions(size=2)
    blobs = [pickling.FunctionPickles().dumps(lambda n=n: n) for n in range(3)]
    first = loaded.load(blobs[0])
    assert loaded.load(bytes(blobs[0])) is first                   # by content
    loaded.load(blobs[1])
    loaded.load(blobs[0])                                          # used: stays
    loaded.load(blobs[2])
    assert set(loaded.loaded) == {blobs[0], blobs[2]}


def test_farm_executor_runs_every_kind_of_callable(farm):
    farm.start_worker("python", slots=2)
    base = 10
    with FarmExecutor(farm.address) as executor:
        closure = lambda n: n + base                               # noqa: E731
        futures = [executor.submit(closure, n) for n in range(5)]
        assert [f.result(30) for f in futures] == [10, 11, 12, 13, 14]
        assert executor.submit(pow, 2, 10).result(30) == 1024       # a builtin
        assert executor.submit(functools.partial(pow, 3), 2).result(30) == 9
        apply = lambda f, n: f(n)                                  # noqa: E731
        assert executor.submit(apply, lambda n: n * 3, n=4).result(30) == 12
        assert executor.submit(lambda: {1, 2}).result(30) == {1, 2}

        class Counter:           # nested: the slot cannot import it, cloudpickle sends it
            def __init__(self, start):
                self.start = start

            def add(self, n):
                return self.start + n
        counter = Counter(100)
        assert [executor.submit(counter.add, n).result(30) for n in (5, 6)] == [105, 106]


def test_a_traceback_from_a_slot_names_the_file_and_line_of_the_function(farm):
    """cloudpickle names code it pickles by value ``<dynamic-code>``; the slot
    gives it back its file, so the traceback shows where it went wrong."""
    farm.start_worker("python")

    def fails():
        return [1 / n for n in (1, 0)]         # the error is in a nested comprehension
    line = fails.__code__.co_firstlineno + 1
    with FarmExecutor(farm.address) as executor:
        error = executor.submit(fails).exception(30)
    assert isinstance(error, ZeroDivisionError)
    text = str(error.__cause__)
    assert '"%s", line %d' % (__file__, line) in text, text
    assert "return [1 / n for n in (1, 0)]" in text     # its source line, read again
    assert "<dynamic-code>" not in text
