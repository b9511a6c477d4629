"""``safepassage run``: the whole platform on one machine, supervised.

:mod:`connectors.platform.supervisor` keeps child processes running (one
process group each, restart with backoff, bounded stop);
:mod:`connectors.platform.services` is the list of the platform's services
(one entry per service); :mod:`connectors.platform.demo` makes the demo
principals' API keys; :mod:`connectors.platform.lock` keeps a second run
from starting beside the first; :mod:`connectors.platform.run` is the
command that puts them together behind a progress display and one summary.
"""
