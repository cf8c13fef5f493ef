"""Interop: Hugging Face folders <-> our checkpoints and tokenizer files (file handling around model/hf_convert)."""
