"""The built-in offline planner: the question parser (intents), the procedures that call tools for each intent, and the evidence-bound answer draft."""
