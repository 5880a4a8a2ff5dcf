"""The farm-worker process: the service loop (``service``), the plugin base and
registry (``plugin``), runs and process trees, and the built-in ``plugins``."""
