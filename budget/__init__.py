"""The compute budget: the ledger that spends it, its database store, cost estimates, the
reserve/charge/settle loop every sandbox job goes through, and settling what a crash left behind.

    ledger.py    Budget and parse_budget; LedgerEntry, Ledger, and `replay`, the one arithmetic
    store.py     DatabaseLedgerStore: a ledger's entries in the knowledge base
    estimate.py  CostEstimator: what a job is expected to cost
    jobs.py      BudgetedJobs: lease a device, reserve, run, charge (or release and retry)
    settle.py    settle_interrupted_jobs: what a crash left reserved, on resume
"""
