"""portrayal-audit: audit pretraining corpora for how they portray AI."""

from audit.cascade import Cascade
from audit.config import ScanConfig
from audit.labels import LABELS
from audit.pipeline import scan

__version__ = "0.1.0"
__all__ = ["LABELS", "Cascade", "ScanConfig", "scan", "__version__"]
