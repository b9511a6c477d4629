"""The event contract: Avro schemas in ``schemas/avro/``."""

from pathlib import Path

AVRO_DIR = Path(__file__).resolve().parent / "avro"

__all__ = ["AVRO_DIR"]
