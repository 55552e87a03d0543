"""``python -m benchmarks.run [--quick] [--out DIR] ...``: the benchmark (see ``so3krates_hk.bench``)."""

import sys

from so3krates_hk.bench import main

if __name__ == "__main__":
    sys.exit(main())
