"""Mail maild writes: templates, composition, the outbox and the sender."""
