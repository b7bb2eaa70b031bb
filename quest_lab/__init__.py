"""quest-lab: precision scaling-law research (QuEST-style quantized training, sweeps, law fits)."""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
