"""The engine: the stage contract, the runner, the Ray adaptation and the commit protocol.

Jobs hand the engine a `Job` (stages built from their config) and `RunOptions`; the engine
validates the manifest, streams items through the stages on Ray Data and commits parts. It never
imports a job module, a stage module, the CLI, exports or the report.
"""
