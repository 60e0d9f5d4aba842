"""Write the small example files of data/examples/ (one per generic format).

They are made by the simulator, so they are synthetic: `python -m core.synth.examples`.
"""

from __future__ import annotations

from pathlib import Path

from core.importers.writers import WRITERS
from core.synth.demo import example_frames

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "examples"
EXAMPLE_FILES = {
    "long-csv": "example_long.csv",
    "long-jsonl": "example_long.jsonl",
    "long-parquet": "example_long.parquet",
    "wide-jsonl": "example_wide.jsonl",
}


def write_examples(folder: Path = EXAMPLES_DIR, seed: int = 7) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    df = example_frames(seed=seed)
    out = []
    for fmt, fname in EXAMPLE_FILES.items():
        writer, _ = WRITERS[fmt]
        out.append(writer(df, folder / fname))
    return out


if __name__ == "__main__":
    for p in write_examples():
        print(p)
