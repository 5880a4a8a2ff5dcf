"""The farm-monitor process: one per machine, reporting its load (``service``)."""
