"""Layer 4: pure filter and score rules over (pod intent, node features, cluster, policy).

No I/O, clock or logging in a rule, so the server, `explain` and the simulator share them.
Each rule module is named for what it decides; engine.py lists them in the order they run.
"""
