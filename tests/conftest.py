import sys
from pathlib import Path

# tests/ helpers (naive.py, sweep.py) importable as top-level modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
