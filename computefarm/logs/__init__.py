"""The log forwarder process: task output and events to a records file and cutelog."""
