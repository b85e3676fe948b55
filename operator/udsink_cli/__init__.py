"""The `udsink` command: one front door to the runtime, the operator and local runs.

A package of its own because it is the one place allowed to import both sides: the runtime
(`sink_runtime`) never imports the operator, and the operator uses only the runtime's config.
"""
