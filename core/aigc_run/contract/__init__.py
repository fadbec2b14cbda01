"""The plugin contract: hook specifications, the objects plugins exchange with the engine,
the errors meant for users, the table of contribution kinds, and the helpers plugins may use.

It is the bottom layer: it imports nothing else of aigc_run. Plugin authors import what
they need from the package root, ``aigc_run``, which re-exports the public part of it
(documented name by name in docs/plugins.md); everything else may change.
"""
