"""The event contract: Avro schemas in ``schemas/avro/`` and typed models of them.

* :mod:`schemas.registry` loads and parses every ``.avsc`` once;
* :mod:`schemas.models` holds one frozen pydantic model per event type, so
  domain code never handles raw dicts;
* :mod:`schemas.types` holds the enums and constrained codes they share.

Importing this package stays cheap: nothing is parsed until first use.
"""

from pathlib import Path

AVRO_DIR = Path(__file__).resolve().parent / "avro"
"""One ``<event.type>.avsc`` per event type: the current version of the contract."""

RELEASED_DIR = AVRO_DIR / "released"
"""``<event.type>/v<N>.avsc``: every released version, for compatibility checks and for
reading records written with an older version."""

NAMESPACE = "org.safepassage.events"
"""Avro namespace of every named type of the contract."""

__all__ = ["AVRO_DIR", "NAMESPACE", "RELEASED_DIR"]
