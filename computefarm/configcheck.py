"""Type checks for farm.yaml: each mistake one ConfigError naming the file and key."""

from . import addresses
from .exceptions import ConfigError


def check_address(address, where="address", allow_port_zero=False):
    """``address`` if it is tcp://HOST:PORT, else ConfigError naming ``where``."""
    addresses.split(address, where, allow_port_zero)
    return address


class Checker:
    """Type checks that raise one-line ConfigErrors naming the file and key."""

    def __init__(self, path):
        self.path = path

    def fail(self, key, expected):
        raise ConfigError("%s: %s: %s" % (self.path, key or "(top level)", expected))

    def mapping(self, value, key, allowed=None):
        if not isinstance(value, dict):
            self.fail(key, "expected a mapping, got %s" % show(value))
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    self.fail("%s.%s" % (key, name) if key else str(name),
                              "unknown key (expected one of: %s)" % ", ".join(allowed))
        return value

    def string(self, value, key):
        if not isinstance(value, str) or not value:
            self.fail(key, "expected a non-empty string, got %s" % show(value))
        return value

    def number(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(key, "expected a number > 0, got %s" % show(value))
        return float(value)

    def integer(self, value, key, minimum=0):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(key, "expected a whole number >= %d, got %s" % (minimum, show(value)))
        return value

    def boolean(self, value, key):
        if not isinstance(value, bool):
            self.fail(key, "expected true or false, got %s" % show(value))
        return value

    def str_map(self, value, key):
        self.mapping(value, key)
        return {str(k): self.scalar(v, "%s.%s" % (key, k)) for k, v in value.items()}

    def scalar(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(key, "expected a string or number, got %s" % show(value))
        return str(value)

    def address(self, value, key, allow_port_zero=False):
        try:
            return check_address(value, key, allow_port_zero)
        except ConfigError as exc:
            raise ConfigError("%s: %s" % (self.path, exc)) from None


def show(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def duration(text, option):
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``7d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).strip().lower()
    scale = units.get(text[-1:], None)
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise ConfigError("%s %r: expected seconds, or a number with s, m, h or d"
                         % (option, text)) from None
    if not value > 0:
        raise ConfigError("%s %r: must be more than 0" % (option, text))
    return value
