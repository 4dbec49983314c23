"""Host-side vetting and scoring: everything the trusted orchestrator decides about a candidate
outside the sandbox (the static check, the trust policy, the held-out scoring and causal audit,
fitness). Nothing here runs inside a sandbox job."""
