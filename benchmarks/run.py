"""``python -m benchmarks.run [--quick] [--out DIR] ...``: the benchmark (see ``benchmarks.driver``)."""

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit code (1 if a configuration failed)."""
    from benchmarks.driver import main as _main

    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
