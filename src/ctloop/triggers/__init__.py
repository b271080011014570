"""Trigger controller: alerts, schedule, new-data volume and manual triggers → at most one run per episode.

Modules: :mod:`.policy` (decisions), :mod:`.ledger` (SQLite WAL record), :mod:`.payloads` (webhook and
request bodies), :mod:`.rules` (alert rules, rendered files, embedded evaluator), :mod:`.sources`
(volume, schedule), :mod:`.submitters` (local, kfp), :mod:`.service` (the loop), :mod:`.api` (HTTP).
"""
