"""The errors a user can cause, each with the exit code its command returns.

Exit codes (documented in README.md):
  0  success
  1  a task failed (majordomo, like doit)
  2  bad input: configuration, command line, request
  3  the TaskManager could not be reached or went away for good
  4  the TaskManager refused this process's key (unknown, revoked, wrong role)
  70 a bug (a traceback is logged)
"""


class FarmError(Exception):
    """Base of every error a user can cause; printed as one ``ERROR:`` line."""

    exit_code = 2


class ConfigError(FarmError):
    """farm.yaml (or a command-line override) is not valid."""


class UsageError(FarmError):
    """A command line or API call asks for something that cannot be done."""


class PluginError(FarmError):
    """A worker plugin cannot be loaded or rejects its request."""


class ProtocolError(FarmError):
    """A message on the wire is malformed or not acceptable; never raised past the
    receiving loop. ``code`` is the wire's ``Code`` the refusal carries."""

    def __init__(self, text, code="invalid"):
        super().__init__(text)
        self.code = code


class StorageError(FarmError):
    """A blob store or a file being staged cannot be read or written."""


class FarmUnreachable(FarmError):
    """The TaskManager does not answer, or shut down while work was outstanding."""

    exit_code = 3


class AccessRefused(FarmError):
    """The TaskManager will not let this key in: retrying cannot help."""

    exit_code = 4


class RemoteError(Exception):
    """Raised by a FarmExecutor future when the remote callable raised.

    The original exception is chained as ``__cause__`` when it could be decoded.
    """
