"""``python -m aigc_run.cli``: how ``--nproc`` and torchrun start each worker."""

import sys

from aigc_run.cli import main

sys.exit(main())
