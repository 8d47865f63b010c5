"""A small word-level CLIP tokenizer, built offline from the caption vocabulary.

It is a real ``CLIPTokenizer`` (byte-level BPE, ``</w>`` word ends) whose merges are learned from
our own word list, so every caption word, "purple" and a few spare words are single tokens, while
any other word still falls back to byte pieces instead of becoming unknown.
"""
from collections import Counter


from transformers import CLIPTokenizer
from tokenizers.pre_tokenizers import ByteLevel

from utils.digits import PALETTE
from utils.minisd.data import DIGIT_WORDS

CAPTION_WORDS = ["a", "digit", "thick", "thin", "small", "large", *DIGIT_WORDS, *PALETTE]
# Not used by any training caption: free for later lessons (textual inversion, Dreambooth, prompts).
SPARE_WORDS = ["sks", "photo", "drawing", "of", "the", "and", "with", "on", "black", "background",
               "big", "tiny", "bold", "number", "style", "in", "my"]
MODEL_MAX_LENGTH = 16  # longest caption is 7 tokens with start/end; room for new tokens


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges, most frequent pair first, until every word is a single token.

    Learning the merges (instead of writing them by hand) matters: BPE applies merges by rank,
    so a hand-made list can let e.g. "r"+"e" (from "red") fire first and split "green".
    """
    pieces = {w: [*w[:-1], w[-1] + "</w>"] for w in sorted(set(words)) if len(w) > 1}
    merges = []
    while True:
        pairs = Counter(p for seq in pieces.values() for p in zip(seq, seq[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))  # ties broken alphabetically: reproducible
        merges.append(best)
        for w, seq in pieces.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            pieces[w] = out


def build_tokenizer(words: list[str] | None = None,
                    model_max_length: int = MODEL_MAX_LENGTH) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` whose vocab is the 256 byte symbols (alone and with ``</w>``), the merged
    pieces of ``words`` (default: caption words, "purple" and the spare words) and the two
    special tokens. ``model_max_length`` is the padded length (default 16)."""
    words = CAPTION_WORDS + SPARE_WORDS if words is None else words
    merges = learn_merges(words)
    symbols = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins for bytes
    vocab_list = symbols + [s + "</w>" for s in symbols]
    vocab_list += [a + b for a, b in merges if a + b not in vocab_list]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
