"""aigc-ecommerce: the e-commerce plugin for aigc-run.

Product-photo loaders (a built-in synthetic demo catalogue, class folders, CSV / JSON lines
/ product-feed catalogues), white-background preprocessing (letterbox, background
whitening, object crop), quality filters for generated product shots, the ``catalogue``
output with its product feed, and the ``ecommerce`` scenario. The engine finds it through
the ``aigc_run.plugins`` entry point.
"""

__version__ = "0.1.0"
