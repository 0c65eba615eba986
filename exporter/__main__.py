"""``python -m exporter`` runs ``dcn-export``."""
import sys

from .cli import main

sys.exit(main())
