"""A million domains: the fixture and the benchmarks that use it, one part at a time.

    python -m bench.million fixture [--n 1000000] [--database linkcert_million]
    python -m bench.million edge [--database linkcert_million] [--processes 2] [--caddy K]

Each part's options are its module's: bench/million_fixture.py, bench/million_edge.py.
Results: bench/RESULTS.md, "A million domains".
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

PARTS = {
    "fixture": "bench.million_fixture",
    "edge": "bench.million_edge",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in PARTS:
        print(__doc__, file=sys.stderr)
        print(f"parts: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(PARTS[args[0]])
    result = module.main(args[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
