"""``python -m connectors.cli``: the ``safepassage`` command without its console script.

The integration tests start workers this way (tests/integration/workers.py),
with the interpreter of the test run rather than whatever ``safepassage`` is
on the PATH.
"""

from connectors.cli import main

main()
