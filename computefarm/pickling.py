"""Pickling for the ``python`` capability: cloudpickle where it is needed, no more.

cloudpickle can pickle what the standard pickle cannot (lambdas, closures,
functions and classes of ``__main__``) but costs tens of microseconds a call
even for ``((), {})``. Plain data (None, bools, numbers, strings, bytes, and
tuples, lists and dicts of them) pickles the same either way, so it takes the
standard pickle's C path; everything else goes to cloudpickle. Only clients
pickle and only python slots unpickle: the TaskManager and workers never do.
"""

import hashlib
import pickle
import types
import weakref
from collections import OrderedDict

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_MAX_PLAIN = 10000          # items looked at before deciding it is not worth it


def dumps(obj):
    """``obj`` pickled: by the standard pickle when it is plain data, else cloudpickle."""
    if _plain(obj, [_MAX_PLAIN]):
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return cloudpickle().dumps(obj)


def _plain(obj, budget):
    kind = type(obj)
    if kind in _SCALARS:
        return True
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if kind is tuple or kind is list:
        return all(_plain(item, budget) for item in obj)
    if kind is dict:
        return all(_plain(key, budget) and _plain(value, budget)
                   for key, value in obj.items())
    return False


class FunctionPickles:
    """Each callable pickled once (the client's side): ``dumps(fn)`` returns the
    bytes of its first pickling while ``fn`` lives.

    Like Dask's, this means a function pickled by value (one defined in
    ``__main__`` or a notebook) carries the module globals it uses as they were
    when it was first submitted. Callables that cannot be weakly referenced or
    hashed (bound methods are new objects at each access) are pickled each time.
    """

    def __init__(self):
        self.cache = weakref.WeakKeyDictionary()
        self.digests = weakref.WeakKeyDictionary()   # fn -> sha256 of its pickle

    def digest(self, fn, blob):
        """The sha256 of ``blob``, ``fn``'s pickle, computed once while ``fn`` lives
        (a big function travels by digest)."""
        try:
            digest = self.digests.get(fn)
        except TypeError:
            return hashlib.sha256(blob).hexdigest()
        if digest is None:
            digest = hashlib.sha256(blob).hexdigest()
            try:
                self.digests[fn] = digest
            except TypeError:
                pass
        return digest

    def dumps(self, fn):
        try:
            blob = self.cache.get(fn)
        except TypeError:               # not hashable, or no weak reference
            return cloudpickle().dumps(fn)
        if blob is None:
            blob = cloudpickle().dumps(fn)
            try:
                self.cache[fn] = blob
            except TypeError:
                pass
        return blob


class LoadedFunctions:
    """Callables unpickled once per slot (the slot's side), by their pickled bytes;
    the least recently used go beyond ``size``."""

    def __init__(self, size=64):
        self.size = size
        self.loaded = OrderedDict()

    def load(self, blob, origin=None):
        """The callable pickled in ``blob`` (its file name given back: ``origin``)."""
        return self._loaded(blob, lambda: cloudpickle().loads(blob), origin)

    def load_file(self, path, origin=None):
        """The callable pickled in the file ``path``: a blob of the machine's cache,
        whose name is its content's digest, so the path is its key."""
        def read():
            with open(path, "rb") as stream:
                return cloudpickle().loads(stream.read())
        return self._loaded(("file", path), read, origin)

    def _loaded(self, key, unpickle, origin):
        fn = self.loaded.get(key)
        if fn is None:
            fn = restore_origin(unpickle(), origin)
            self.loaded[key] = fn
            if len(self.loaded) > self.size:
                self.loaded.popitem(last=False)
        else:
            self.loaded.move_to_end(key)
        return fn


DYNAMIC = "<dynamic-code>"      # cloudpickle's file name for code it pickles by value


def origin(fn):
    """The file ``fn`` was defined in, when cloudpickle will pickle it by value (it
    then replaces the file name with ``<dynamic-code>`` to keep its pickles
    deterministic): sent beside it so tracebacks name the file again; or None."""
    code = getattr(fn, "__code__", None)
    if not isinstance(fn, types.FunctionType) or code is None:
        return None
    return code.co_filename if not code.co_filename.startswith("<") else None


def restore_origin(fn, filename):
    """Give ``fn``'s code (and the code nested in it: lambdas, comprehensions)
    back its file name, in a slot, so a traceback shows file, line and source."""
    if isinstance(fn, types.FunctionType) and isinstance(filename, str) and filename:
        fn.__code__ = _renamed(fn.__code__, filename)
    return fn


def _renamed(code, filename):
    if code.co_filename != DYNAMIC:
        return code
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def cloudpickle():
    """cloudpickle, imported when first needed: a program that never ships a
    callable (majordomo with command actions only) does not pay its import."""
    import cloudpickle
    return cloudpickle
