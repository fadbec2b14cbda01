"""The engine's built-in model families: ``gan`` and ``vae``, one module each."""
