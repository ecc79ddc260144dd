"""Bytes in: the IMAP readers, the SMTP listener and the local sink. No ticket logic."""
