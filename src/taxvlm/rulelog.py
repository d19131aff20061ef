"""The rule log every workflow script writes: logging, Python warnings and an uncaught exception.

Snakemake's `--show-failed-logs` prints the rule's `log:` file, but warnings and tracebacks go to
stderr, so a failed job's log used to end without its error. One call at the top of a script sends
all three to the log (the traceback also still reaches stderr).
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def rule_log(path: str) -> None:
    """Log INFO and above, `warnings.warn` and any uncaught exception to `path`."""
    logging.basicConfig(filename=path, level=logging.INFO, format=FORMAT, force=True)
    logging.captureWarnings(True)
    previous = sys.excepthook

    def log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        logging.getLogger("taxvlm").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = log_uncaught
