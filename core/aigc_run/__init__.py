"""aigc-run: generative image models for vertical scenarios.

Importing this package is cheap: torch and the plugins load only when a command needs them.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@aigc_run.hookimpl``.
hookimpl = pluggy.HookimplMarker("aigc_run")

__all__ = ["__version__", "hookimpl"]
