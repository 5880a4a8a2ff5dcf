"""Files over the one port: blobs named by their content, trees of them, transfers.

``cas`` is a store of blobs on disk (the TaskManager's, and each worker's cache);
``trees`` describes a project's files as a manifest of digests and lays one out
again elsewhere; ``transfer`` moves blobs to and from the TaskManager in chunks
over a peer's link.
"""
