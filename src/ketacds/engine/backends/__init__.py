"""The three engine backends (:mod:`ketacds.engine.backend` says what a backend does).

* :mod:`ketacds.engine.backends.durable`: durable_rules, the production path;
* :mod:`ketacds.engine.backends.reference`: the reference evaluator, the oracle;
* :mod:`ketacds.engine.backends.compiled`: the rules as generated Python functions.
"""
