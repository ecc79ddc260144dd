"""The operator's window: GET /healthz, GET /metrics and a read-only dashboard, served by
every `maild run` when `[web] enabled` (see docs/design.md, "The web part")."""
