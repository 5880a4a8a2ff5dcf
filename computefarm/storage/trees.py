"""A project's files as a manifest of digests, and that manifest laid out again.

On the user's machine, ``scan`` walks the project directory (leaving out what
``exclude`` names, gitignore-style, through ``pathspec``) and describes each
file by its path relative to the root, digest, size and executable bit, each
symbolic link by its target, each empty directory by its path; a
``DigestCache`` keeps digests across runs so only changed files are read
again. On a worker, ``lay_out`` builds the same tree in a scratch directory
from its blob cache (hard links: no copies) and ``collect`` stores the outputs
a task made there.

A manifest travels as a blob (``encode``/``decode``): a task names its tree by
digest, so a worker fetches a project's description once however many tasks
use it.
"""

import os
import stat
import time

import msgpack
import pathspec

from ..exceptions import StorageError
from .cas import digest_file, is_digest

# Left out of every tree: version control, doit's database, caches of tools.
DEFAULT_EXCLUDE = (".git/", ".hg/", ".svn/", ".doit.db", ".doit.db.*", "__pycache__/",
                   "*.pyc", ".computefarm/")
RECENT = 2.0     # s: a file modified this recently may change again within its mtime's tick


class Manifest:
    """Files ``{path: (digest, size, executable)}``, links ``{path: target}``, and
    empty directories, all relative to the tree's root with '/' separators."""

    __slots__ = ("files", "links", "dirs")

    def __init__(self, files=None, links=None, dirs=None):
        self.files = files if files is not None else {}
        self.links = links if links is not None else {}
        self.dirs = dirs if dirs is not None else []

    def encode(self):
        return msgpack.packb({"files": [[p, d, s, x] for p, (d, s, x) in
                                        sorted(self.files.items())],
                              "links": sorted(self.links.items()),
                              "dirs": sorted(self.dirs)}, use_bin_type=True)

    @property
    def size(self):
        return sum(size for _, size, _ in self.files.values())


def decode(data, what="tree"):
    """A Manifest from ``encode``'s bytes; StorageError names what is wrong."""
    try:
        body = msgpack.unpackb(data, raw=False)
        files = {}
        for path, digest, size, executable in body["files"]:
            if not (is_digest(digest) and isinstance(size, int) and size >= 0):
                raise ValueError("bad entry for %r" % (path,))
            files[safe_path(path, what)] = (digest, size, bool(executable))
        links = {safe_path(path, what): str(target) for path, target in body["links"]}
        dirs = [safe_path(path, what) for path in body["dirs"]]
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError("%s does not decode: %s" % (what, exc)) from None
    return Manifest(files, links, dirs)


def safe_path(path, what="tree"):
    """``path`` if it is relative and stays inside the tree, else StorageError."""
    if not isinstance(path, str) or not path or path.startswith("/") or \
            any(part in ("", ".", "..") for part in path.split("/")):
        raise StorageError("%s: the path %r is not relative inside the tree" % (what, path))
    return path


class DigestCache:
    """Digests of files by path, size, mtime and inode, kept in a file between runs.

    An entry is trusted only while the file's size, mtime and inode are unchanged
    and its mtime was older than ``RECENT`` seconds when it was read (a change
    within the same tick of the clock would otherwise go unseen).
    """

    def __init__(self, path=None, clock=time.time):
        self.path = path
        self.clock = clock
        self.entries = {}
        self.changed = False
        self.hashed = 0               # files read to digest them (for reports and tests)
        if path is not None:
            try:
                with open(path, "rb") as handle:
                    self.entries = msgpack.unpackb(handle.read(), raw=False)
            except (OSError, ValueError, msgpack.UnpackException):
                self.entries = {}
            if not isinstance(self.entries, dict):
                self.entries = {}

    def digest(self, path, st=None):
        """``(digest, size)`` of the file at ``path`` (absolute)."""
        st = st or os.stat(path)
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self.entries.get(path)
        if entry is not None and entry[:3] == key:
            return entry[3], st.st_size
        digest, size = digest_file(path)
        self.hashed += 1
        if self.clock() - st.st_mtime > RECENT and size == st.st_size:
            self.entries[path] = key + [digest]
            self.changed = True
        return digest, size

    def save(self):
        if self.path is None or not self.changed:
            return
        temporary = "%s.%d" % (self.path, os.getpid())
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(msgpack.packb(self.entries, use_bin_type=True))
            os.replace(temporary, self.path)
        except OSError:
            pass                      # a cache: the next run reads the files again


def excluder(patterns, defaults=True):
    """A function telling whether a relative path (dirs end with '/') is matched by
    ``patterns`` (gitignore-style; with ``defaults``, or by ``DEFAULT_EXCLUDE``)."""
    spec = pathspec.GitIgnoreSpec.from_lines(
        (list(DEFAULT_EXCLUDE) if defaults else []) + list(patterns or ()))
    return spec.match_file


def scan(root, exclude=(), leave_out=(), cache=None):
    """The Manifest of the tree under ``root``: what ``exclude`` (gitignore-style
    patterns) and ``leave_out`` (relative paths, e.g. targets) do not name."""
    root = os.path.abspath(root)
    excluded = excluder(exclude)
    leave_out = set(leave_out)
    cache = cache or DigestCache()
    manifest = Manifest()
    for folder, dirnames, filenames in os.walk(root):
        relative = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        kept = []
        for name in dirnames:
            path = prefix + name
            full = os.path.join(folder, name)
            if os.path.islink(full):
                filenames.append(name)        # a link to a directory is a link
            elif not excluded(path + "/") and path not in leave_out:
                kept.append(name)
        dirnames[:] = sorted(kept)
        files = 0
        for name in filenames:
            path = prefix + name
            if path in leave_out or excluded(path):
                continue
            files += 1
            full = os.path.join(folder, name)
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    manifest.links[path] = os.readlink(full)
                elif stat.S_ISREG(st.st_mode):
                    digest, size = cache.digest(full, st)
                    manifest.files[path] = (digest, size, bool(st.st_mode & 0o111))
            except FileNotFoundError:         # removed while we walked: not an input
                continue
            except OSError as exc:
                raise StorageError("cannot read %s: %s" % (full, exc.strerror)) from None
        if prefix and not files and not dirnames:      # its folder exists there too
            manifest.dirs.append(relative)
    return manifest


def lay_out(manifest, store, target):
    """Build ``manifest``'s tree under ``target`` (an empty directory) from
    ``store`` (a cas.BlobStore holding every file's blob): files are hard links
    to the blobs (read-only) or, for executables, copies; returns ``{path:
    (digest, mtime_ns)}`` of the linked files, for ``changed_inputs``."""
    linked = {}
    made = {target}
    for path in manifest.dirs:
        os.makedirs(os.path.join(target, path), exist_ok=True)
    for path, (digest, size, executable) in manifest.files.items():
        destination = os.path.join(target, path)
        folder = os.path.dirname(destination)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        source = store.path(digest)
        if executable:
            _copy(source, destination, 0o755)
            continue
        try:
            os.link(source, destination)
        except FileNotFoundError:
            raise StorageError("blob %s of %s left the cache" % (digest[:12], path)) from None
        except OSError:                        # another filesystem: a copy
            _copy(source, destination, 0o444)
            continue
        linked[path] = (digest, os.stat(source).st_mtime_ns)
    for path, link_target in manifest.links.items():
        destination = os.path.join(target, path)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.symlink(link_target, destination)
    return linked


def changed_inputs(store, linked):
    """Digests of linked inputs a task wrote into (their blob changed with them)."""
    changed = []
    for path, (digest, mtime_ns) in linked.items():
        try:
            if os.stat(store.path(digest)).st_mtime_ns != mtime_ns:
                changed.append(digest)
        except FileNotFoundError:
            pass
    return changed


def existing(root, outputs):
    """The files of ``outputs`` (relative paths under ``root``) that exist, each
    once: ``[(path, full path, executable)]`` (what a staged run hashes, in a
    thread, and then moves into the store)."""
    found, seen = [], set()
    for path in outputs:
        full = os.path.normpath(os.path.join(root, safe_path(path, "outputs")))
        try:
            st = os.stat(full)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and full not in seen:
            seen.add(full)
            found.append((path, full, bool(st.st_mode & 0o111)))
    return found


def _copy(source, destination, mode):
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        while True:
            chunk = reader.read(1 << 20)
            if not chunk:
                break
            writer.write(chunk)
    os.chmod(destination, mode)
