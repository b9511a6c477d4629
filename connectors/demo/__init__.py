"""The live demo of ``safepassage run --demo`` (``make demo``): docs/demo.md.

``plan`` is the script, pure (cases, provider behaviours, timings);
``streamer`` sends the cases through the intake as the demo agencies;
``simulator`` receives the demo providers' webhooks and answers as they
would; ``cli`` is ``safepassage demo providers|stream``.
"""
