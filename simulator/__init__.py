"""loyalty-sim: simulate a retail loyalty program before launching it.

Data flows one way: YAML files -> typed specs (:mod:`simulator.specs`) -> engine
(:mod:`simulator.engine`) -> ledger and finance (:mod:`simulator.finance`) -> reporting.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("loyalty-sim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
