"""Cross-encoder reranking: one pair encoding for training and inference, score cache, depth."""
