"""ComputeFarm: a task farm over one firewall port."""

__version__ = "0.1.0"
