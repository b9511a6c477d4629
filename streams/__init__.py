"""Kafka plumbing: settings, topic catalog, provisioning, client configs, logging.

Nothing here knows about survivors or referrals; the domain lives in
:mod:`processors`.
"""
