"""Files through a client's link: the blobs its tasks read and write.

``Client.upload`` and ``Client.download`` return futures; the transfers
themselves (``storage.transfer``) run in the client's thread, which owns the
link. A download lands atomically: it is written under a temporary name beside
its path, its digest checked, then renamed into place with its mode, so a
reader never sees a torn or wrong file.
"""

import os
import secrets
import shutil
import tempfile
import threading
from concurrent.futures import Future

from ..exceptions import FarmUnreachable, StorageError
from ..storage.cas import Incoming, remove_file
from ..storage.transfer import Transfers
from ..wire.protocol import Code


class Files:
    def __init__(self, wake):
        self.transfers = Transfers()
        self.wake = wake
        self.lock = threading.Lock()
        self.requests = []          # (kind, arguments, future): for the client's thread
        self.futures = set()        # not resolved yet
        self.spool = None           # where big python results land (a temporary folder)
        self.serial = 0

    # -- the caller's side -----------------------------------------------------
    def upload(self, files, hold=False):
        """A Future resolved once the TaskManager's store has every one of ``files``
        (``(digest, size, path or bytes)``), or failed with StorageError.
        ``hold``: the store keeps them for as long as this client is connected
        (storage/transfer.py)."""
        return self._request("upload", (list(files), hold))

    def missing(self, digests, hold=False):
        """A Future of the set of ``digests`` the TaskManager's store lacks."""
        return self._request("missing", (list(digests), hold))

    def download(self, digest, size, path, mode=0o644):
        """A Future of ``path`` once blob ``digest`` is written there (atomically,
        with ``mode``), or failed with StorageError."""
        return self._request("download", (digest, size, os.path.abspath(path), mode))

    def _request(self, kind, arguments):
        future = Future()
        with self.lock:
            self.requests.append((kind, arguments, future))
            self.futures.add(future)
        self.wake()
        return future

    # -- the client's thread -----------------------------------------------------
    def pump(self, link, now):
        with self.lock:
            requests, self.requests = self.requests, []
        for kind, arguments, future in requests:
            if kind == "upload":
                self.transfers.upload(arguments[0], lambda error, f=future: self._settle(
                    f, error, None), hold=arguments[1])
            elif kind == "missing":
                self.transfers.missing(arguments[0], lambda error, lacking, f=future:
                                       self._settle(f, error, lacking), hold=arguments[1])
            else:
                self._start_download(future, *arguments)
        if self.transfers.busy:
            self.transfers.pump(link, now)

    def _start_download(self, future, digest, size, path, mode):
        temporary = os.path.join(os.path.dirname(path), ".%s.%s.part" % (
            os.path.basename(path), secrets.token_hex(4)))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sink = Incoming(digest, size, temporary)
        except OSError as exc:
            self._settle(future, "cannot write %s: %s" % (path, exc.strerror), None)
            return

        def done(error):
            if error is None:
                try:
                    sink.handle.close()
                    os.chmod(temporary, mode)
                    os.replace(temporary, path)
                except OSError as exc:
                    error = "cannot write %s: %s" % (path, exc.strerror)
            if error is not None:
                sink.abort()
            self._settle(future, error, path)
        self.transfers.download(digest, size, sink, done)

    def fetch_value(self, body, then):
        """(The client's thread.) A RESULT item whose value is a blob
        (``value_blob``): fetched through a file of this client's spool folder
        into ``body["value"]``, or the item made an error saying why; then
        ``then(body)``."""
        if self.spool is None:
            self.spool = tempfile.mkdtemp(prefix="computefarm-results-")
        ref = body["value_blob"]
        self.serial += 1
        path = os.path.join(self.spool, "%s.%d" % (ref["digest"][:16], self.serial))

        def fetched(download):
            try:
                download.result()
                with open(path, "rb") as stream:
                    body["value"] = stream.read()
            except (StorageError, FarmUnreachable, OSError) as exc:
                body.update(status="error", code=Code.STAGING, value=None,
                            error="fetching its result (%d bytes): %s" % (ref["size"], exc))
            finally:
                remove_file(path)
            then(body)
        self.download(ref["digest"], ref["size"], path).add_done_callback(fetched)

    def close(self):
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None

    def _settle(self, future, error, value):
        with self.lock:
            self.futures.discard(future)
        if future.done():
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(StorageError(error))

    def handle(self, mtype, body, now):
        return self.transfers.handle(mtype, body, now)

    def reset(self):
        """The client was welcomed (again): what was in flight goes again, and
        what the store held for it is held again."""
        self.transfers.reset()
        self.transfers.rehold()

    def fail_all(self, text):
        with self.lock:
            futures, self.futures = self.futures, set()
            self.requests = []
        self.transfers.abandon()                   # no half-written file is left
        held, self.transfers = self.transfers.held, Transfers()
        self.transfers.held = held                 # asked again of the next TaskManager
        for future in futures:
            if not future.done():
                future.set_exception(FarmUnreachable(text))
