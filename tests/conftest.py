from pathlib import Path

CANDIDATES = Path(__file__).parent / "candidates"
