"""Network layers shared by the tokenizer and the world model (`norm`: RMSNorm)."""
