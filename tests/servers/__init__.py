"""Local fakes of the remote services codi-eval talks to (Opik, Gemini)."""
