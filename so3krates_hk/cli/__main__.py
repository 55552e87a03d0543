"""``python -m so3krates_hk.cli``: the same as ``so3krates-hk``."""

import sys

from so3krates_hk.cli import main

sys.exit(main())
