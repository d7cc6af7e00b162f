"""I/O: audio decode and encode, URIs, manifests, sample keys, the output folder's layout, and shards.

Plain functions over files and object stores; never imports the engine, stages, jobs or the CLI.
"""
