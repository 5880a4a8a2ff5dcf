"""A project's files for workers that do not see them: what a client stages.

``ProjectFiles.snapshot`` describes the project directory (``storage.trees``),
uploads the blobs the TaskManager's store lacks and the tree's manifest; each
task's request then gets a ``stage`` map (``stage``): the tree, the inputs the
tree does not hold (outputs of earlier tasks, files outside it left aside),
and the outputs to bring back, which ``fetch`` writes into the project
atomically once the task is done. A worker on this machine runs the task in
place (worker/staging.py), so only the machines that need the files get them.
"""

import os
from concurrent.futures import TimeoutError as FutureTimeout

import msgpack

from .. import defaults
from ..exceptions import FarmUnreachable, StorageError
from ..hostinfo import machine_id
from ..storage import trees
from ..storage.cas import digest_bytes, location

UPLOAD_WAIT = 3600.0       # s: a snapshot's upload may take this long before it is an error
SNAPSHOT_TRIES = 3         # snapshots of a tree whose files keep changing before giving up


class ProjectFiles:
    """The files under ``root`` as ``client``'s tasks see them."""

    def __init__(self, client, root, exclude=(), leave_out=(), cache_path=None):
        self.client = client
        self.root = os.path.abspath(root)
        self.exclude = list(exclude)
        self.leave_out = {path for path in map(self.relative, leave_out) if path}
        self.machine = machine_id()
        st = os.stat(self.root)
        self.root_id = [st.st_dev, st.st_ino]     # a worker that sees this folder runs in place
        if cache_path is None:
            cache_path = os.path.join(
                location(None, defaults.DIGESTS_ENV, defaults.DIGESTS_DIR),
                digest_bytes(self.root.encode())[:32])
        self.digests = trees.DigestCache(cache_path)
        self.manifest = trees.Manifest()
        self.tree = None            # {"digest", "size"} of the manifest in the store
        self.known = {}             # relative path -> FILE_ENTRY: produced or sent since
        self.narrowed = {}          # patterns -> (tree, Manifest): trees of meta inputs

    def relative(self, path):
        """``path`` relative to the root ('/'-separated), or None when outside it."""
        full = os.path.abspath(os.path.join(self.root, path))
        if not full.startswith(self.root + os.sep):
            return None
        return os.path.relpath(full, self.root).replace(os.sep, "/")

    def snapshot(self, timeout=UPLOAD_WAIT, tries=SNAPSHOT_TRIES):
        """Describe the tree and make sure the store has it (blocks until it has).
        A file that changed while it was read or sent (the store refuses content
        that is not its digest) is read again: every file, digests kept or not."""
        for attempt in range(1, tries + 1):
            try:
                return self._snapshot(timeout)
            except StorageError:
                if attempt == tries:
                    raise
                self.digests.entries.clear()      # (saved so: the wrong ones go)
                self.digests.changed = True

    def _snapshot(self, timeout):
        self.manifest = trees.scan(self.root, self.exclude, self.leave_out, self.digests)
        self.digests.save()
        blob = self.manifest.encode()
        self.tree = {"digest": digest_bytes(blob), "size": len(blob)}
        files = {self.tree["digest"]: (len(blob), blob)}
        for path, (digest, size, _) in self.manifest.files.items():
            files.setdefault(digest, (size, os.path.join(self.root, path)))
        self._upload(files, timeout)

    def stage(self, request, inputs=(), outputs=(), narrow=None, remote=None,
              timeout=UPLOAD_WAIT):
        """``request`` with its ``stage``: ``inputs`` (paths) the tree does not hold
        are added (and uploaded), ``outputs`` (paths) come back with the result.
        ``narrow`` (gitignore-style patterns, meta inputs): the task's tree is only
        the files they match, plus any file a plain path among them names.
        ``remote`` (majordomo's RemoteOutputs): inputs only in the farm's store,
        sent by digest; the task is then staged even where the project is seen
        (``away``), as those files are not in it."""
        tree, manifest = self.tree, self.manifest
        if narrow:
            tree, manifest = self._narrowed(narrow, timeout)
            inputs = list(inputs) + [path for path in narrow if not _pattern(path)]
        files, upload, away = [], {}, False
        for path in inputs:
            relative = self.relative(path)
            if relative is None or relative in manifest.files:
                continue          # outside the project (the worker's own), or in the tree
            full = os.path.join(self.root, relative)
            entry = remote.get(full) if remote is not None else None
            if entry is not None:
                files.append({"path": relative, "digest": entry["digest"],
                              "size": entry["size"], "exec": entry["exec"]})
                away = True
                continue
            entry = self.known.get(relative)
            if entry is None or not _same(full, entry):
                if not os.path.isfile(full):
                    continue      # doit says what is wrong with a missing dependency
                digest, size = self.digests.digest(full)
                entry = {"path": relative, "digest": digest, "size": size,
                         "exec": os.access(full, os.X_OK)}
                upload[digest] = (size, full)
                self.known[relative] = dict(entry, stat=_stat(full))
            files.append({key: entry[key] for key in ("path", "digest", "size", "exec")})
        if upload:
            self._upload(upload, timeout)
        stage = {"root": self.root, "machine": self.machine, "root_id": self.root_id,
                 "tree": tree, "files": files,
                 "outputs": [path for path in map(self.relative, outputs) if path]}
        if away:
            stage["away"] = True
        return dict(request, stage=stage)

    def _narrowed(self, patterns, timeout):
        key = tuple(patterns)
        if key not in self.narrowed:
            matches = trees.excluder(patterns, defaults=False)
            manifest = trees.Manifest(
                {p: entry for p, entry in self.manifest.files.items() if matches(p)},
                {p: target for p, target in self.manifest.links.items() if matches(p)},
                [p for p in self.manifest.dirs if matches(p + "/")])
            blob = manifest.encode()
            tree = {"digest": digest_bytes(blob), "size": len(blob)}
            self._upload({tree["digest"]: (len(blob), blob)}, timeout)
            self.narrowed[key] = (tree, manifest)
        return self.narrowed[key]

    def action(self, capability, request, requires=None):
        """The digest naming a staged ``request``'s action (the action cache): its
        capability, command, environment and working folder with the project's
        path taken out (the same project elsewhere shares them), its constraints,
        its inputs' digests and its outputs."""
        stage = request["stage"]
        plain = _rooted({key: value for key, value in request.items() if key != "stage"},
                        self.root)
        described = [capability, plain, sorted((requires or {}).items()),
                     stage["tree"]["digest"] if stage["tree"] else None,
                     sorted([f["path"], f["digest"], f["exec"]] for f in stage["files"]),
                     sorted(stage["outputs"])]
        return digest_bytes(msgpack.packb(described, use_bin_type=True))

    def fetch(self, result, timeout=UPLOAD_WAIT):
        """Write a staged task's outputs (``result.outputs``) into the project."""
        futures = []
        for entry in result.outputs:
            relative = trees.safe_path(entry["path"], "the task's outputs")
            full = os.path.join(self.root, relative)
            futures.append((entry, full, self.client.download(
                entry["digest"], entry["size"], full, 0o755 if entry.get("exec") else 0o644)))
        for entry, full, future in futures:
            _wait(future, timeout, "fetching %s" % full)
            self.known[entry["path"]] = dict(entry, stat=_stat(full))
        return [full for _, full, _ in futures]

    def refresh(self, timeout=UPLOAD_WAIT):
        """Upload again what the tasks use (the store lost a blob): the tree and
        what was sent or produced since."""
        files = {self.tree["digest"]: (self.tree["size"], self.manifest.encode())}
        for path, (digest, size, _) in self.manifest.files.items():
            files.setdefault(digest, (size, os.path.join(self.root, path)))
        for path, entry in self.known.items():
            files.setdefault(entry["digest"], (entry["size"], os.path.join(self.root, path)))
        self._upload(files, timeout)

    def _upload(self, files, timeout):
        """Make sure the store has ``files``, held there while the client is
        connected: its tasks read them."""
        _wait(self.client.upload([(digest, size, source)
                                  for digest, (size, source) in files.items()], hold=True),
              timeout, "uploading the project's files")


def _pattern(text):
    """Whether a meta input is a pattern (else a plain path, added if outside the tree)."""
    return text.endswith("/") or any(c in text for c in "*?[!")


def _rooted(value, root):
    """``value`` with ``root`` replaced by a placeholder in every string in it."""
    if isinstance(value, str):
        return value.replace(root, "\0ROOT")
    if isinstance(value, list):
        return [_rooted(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _rooted(item, root) for key, item in sorted(value.items())}
    return value


def _stat(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _same(path, entry):
    """Whether the file at ``path`` is still the one ``entry`` describes."""
    try:
        return _stat(path) == entry.get("stat")
    except OSError:
        return False


def _wait(future, timeout, what):
    try:
        return future.result(timeout)
    except StorageError as exc:
        raise StorageError("%s: %s" % (what, exc)) from None
    except FutureTimeout:
        raise FarmUnreachable("%s: not done within %gs" % (what, timeout)) from None
