"""Import before numpy: sets the BLAS thread count for this process.

One BLAS thread unless ``--blas-threads N`` is on the command line (an
``OPENBLAS_NUM_THREADS`` etc. already in the environment wins): on a small
shared machine a multi-threaded mat-vec per query is slower and far noisier
than a single-threaded one, so this is the *stronger* baseline; vecstore's
own exact scans use the same numpy.  Kept apart from ``_common`` because
that module loads numpy.
"""

from __future__ import annotations

import os
import sys


def limit_blas_threads(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    threads = argv[argv.index("--blas-threads") + 1] if "--blas-threads" in argv else "1"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
