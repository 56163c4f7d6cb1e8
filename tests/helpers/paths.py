"""Where the tests find the repository and their shipped data, whatever folder a test file sits in."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = REPO / 'tests' / 'data'
