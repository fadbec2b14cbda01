"""aigc-ecommerce: the e-commerce plugin for aigc-run.

Product-photo loaders (a built-in synthetic demo catalogue, class folders, CSV catalogues),
white-background preprocessing, quality filters for generated product shots, and the
``ecommerce`` scenario. The engine finds it through the ``aigc_run.plugins`` entry point.
"""

__version__ = "0.1.0"
