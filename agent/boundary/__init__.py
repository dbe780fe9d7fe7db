"""The tool boundary: the tools the planners call (typed contracts in, evidence records out) and their implementations."""
