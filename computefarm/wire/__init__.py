"""The wire layer every process shares: frames and message bodies (``protocol``),
a peer's connection to the port (``link``) and key files (``certificates``)."""
