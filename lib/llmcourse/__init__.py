"""llmcourse: reference implementations for the LLM course, one module per topic.

Topic modules (each is the answer key of its assignment)
----------------------------------------------------------
tokenization    byte-level BPE, GPT-4's cl100k ranks (assignment 01)
embeddings      cosine similarity, neighbours, analogies, skip-gram with negative sampling (02)
autoregressive  bigram and MLP language models, cross-entropy, perplexity, samplers, generation (03)
attention       softmax, scaled dot-product and multi-head attention (04)
transformer     LayerNorm, MLP, blocks, GPT with a KV cache, a BERT encoder (05)
llama           RMSNorm, rotary positions, SwiGLU, grouped-query attention, a Llama-style decoder (05b)
training        batches, cross-entropy, AdamW, warm-up + cosine, clipping, the training loop, checkpoints (06)
finetune        classification heads on pretrained models: probe, fine-tune, from scratch (07)
instruct        chat template, loss mask on the prompt, supervised fine-tuning (08)
rlhf            reward models, policy search, REINFORCE, advantages, PPO with a KL penalty (09)
decoding        greedy, beam search (length normalisation, n-best), sampling behind one interface (10)
scaling         parameter counts, C = 6ND, power-law fits, compute-optimal size, emergence (11)
multimodal      images as patches, a projector into the LM's space, interleaved sequences, contrastive loss (12)

Subpackages
-----------
toolbox/        what notebooks use but no student implements: packaged data and models (Shakespeare,
                GloVe, MiniLM, SmolLM2's GGUF), viz, bertviz offline, head finding, the course site
checks/         ``check()``, the checker behind it, the spec kit and the cases each graded function is checked on
grading/        the trusted grading pipeline (nbgrader underneath)
workspace       students' own copies of the lectures and assignments (``make start``), never overwritten
cli             the ``llmcourse`` command
"""

__version__ = "0.1.0"
