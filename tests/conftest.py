"""Shared test set-up.

Note for newcomers: no test folder may be named like an importable package the tests use.
pytest puts ``tests/`` on ``sys.path``, so a folder ``tests/solo/`` would become a namespace
package ``solo`` and pass for solo-learn where it is not installed (this bit us on CI); the
solo-learn adapter's tests therefore live in ``tests/adapter/``.
"""
