"""The grounding check (every number and finding bound to the evidence it cites) and the guard that runs a planner within its limits."""
