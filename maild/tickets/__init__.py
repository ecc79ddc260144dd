"""The ticket domain: its model, the one service every change goes through, SLA,
alerts, follow-ups, surveys, customers, triage, the report and the views."""
