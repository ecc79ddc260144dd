"""Reading IMAP mailboxes ([[mailboxes]] in the config) into the intake pipeline."""
