"""Text classification: sentences and documents read, tokenized, indexed and classified by CNNs (Kim 2014)."""
