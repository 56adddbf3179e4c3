"""Greedy JSON generation under a JSON schema for the in-process llama.cpp backend, with the
schema's fixed text written in without decoding it token by token.

Most of an answer's tokens are fixed by its schema: the braces, the property names and their
order, the separators (`{"codes":{"SR":`, `,"narrative":[{"section":`). A grammar over the whole
answer makes the model produce each of them, one decode step per token, although nothing is being
chosen. `SchemaDecoder` walks the schema instead (the "jump-forward" of compressed-FSM decoding,
Zheng et al., SGLang, 2024): fixed text is tokenized and decoded as one batch, and the model is
asked only where there is a choice, each choice constrained by the grammar of its sub-schema
(llama-cpp-python's `json_schema_to_gbnf`):

* an object whose properties are all required and closed (additionalProperties false): its braces,
  names and separators are fixed text; each value is generated in turn;
* an array of objects with maxItems: the choice to open another item or to close the array
  (`{"name":` or `,{"name":` against `]` plus what follows the array, e.g. `]}`: spelled with the
  text around it so the model sees the tokens it would write itself) is the model's, within
  minItems/maxItems;
* an enum (a confidence, a section) and an array of enum items with maxItems (cited keys): a choice
  among literal texts, each spelled with what follows it (`0.8,`; `"p_present","` to go on or
  `"p_present"]}` to close). The model is asked only where the options still possible part; the
  whole tokens they all share next are fixed text (`0` chosen, `.` fixed, `8` chosen; `heart`
  chosen, `_rate_bpm` fixed). Fixed pieces that follow each other are tokenized together, so the
  model sees the tokens it writes itself (`":` `["`), and a choice is never split inside such a
  token (`","` against `"]`, not a lone `"` first) (see `_choose`);
* anything else (a string, an open object): one free segment under the grammar of that sub-schema
  followed by the first character of what comes next (`,` `}`), ending as soon as that is
  complete (see `_free`).

Within a free segment the grammar is checked lazily, as llama.cpp's own sampler does
(common_sampler_sample): the arg-max token is tested alone and the whole vocabulary is filtered only
when the grammar rejects it — the same token either way. The answer is the same JSON language as
the whole-schema grammar's (compact separators); its text can differ from whole-grammar decoding
only where the model would have spelled fixed text with other tokens. Greedy, so reproducible.
"""
from __future__ import annotations

import ctypes
import json
import re
import time
from typing import Callable


class DecodeTimeout(Exception):
    """The deadline passed (raised between decode calls)."""


class GrammarDeadEnd(Exception):
    """No token is allowed by the grammar."""


def _closed_object(schema: dict) -> list[tuple[str, dict]] | None:
    props = schema.get("properties")
    if (schema.get("type") == "object" and isinstance(props, dict) and props
            and schema.get("additionalProperties") is False and set(schema.get("required", [])) == set(props)):
        return list(props.items())
    return None


def _object_array(schema: dict) -> tuple[dict, int, int] | None:
    items = schema.get("items")
    if (schema.get("type") == "array" and isinstance(items, dict) and _closed_object(items) is not None
            and isinstance(schema.get("maxItems"), int)):
        return items, int(schema.get("minItems", 0)), int(schema["maxItems"])
    return None


def _literals(schema: dict) -> list[str] | None:
    """The JSON texts of an enum's values (compact, ASCII: as the grammar spells them), or None."""
    values = schema.get("enum")
    if not isinstance(values, list) or not values or set(schema) - {"enum", "type", "description", "title"}:
        return None
    return list(dict.fromkeys(json.dumps(v, separators=(",", ":")) for v in values))


def _literal_array(schema: dict) -> tuple[list[str], int, int] | None:
    """(item literals, minItems, maxItems) of an array of enum items with a maxItems, or None."""
    items = schema.get("items")
    if (schema.get("type") == "array" and isinstance(items, dict) and isinstance(schema.get("maxItems"), int)
            and schema["maxItems"] >= 1 and set(schema) <= {"type", "items", "minItems", "maxItems", "description", "title"}):
        values = _literals(items)
        if values is not None:
            return values, int(schema.get("minItems", 0)), int(schema["maxItems"])
    return None


def _prefix_free(options: list[str]) -> bool:
    """No option is the start of another (so the choice ends where an option does)."""
    opts = sorted(set(options))
    return bool(opts) and all(not b.startswith(a) for a, b in zip(opts, opts[1:]))


class SchemaDecoder:
    """One answer: `run(schema)` after the prompt has been decoded (its last logits are ready)."""

    def __init__(self, llm, *, grammar_text: Callable[[dict], str], deadline: float, max_tokens: int,
                 t0: float):
        import llama_cpp
        self._c = llama_cpp
        self.llm = llm
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = llm.n_vocab()
        self.eog = llm.token_eos()
        self.grammar_text = grammar_text
        self.deadline = deadline
        self.max_tokens = max_tokens
        self.t0 = t0
        self.pending: list[int] = []       # tokens of the answer not yet decoded
        self.pending_text = ""              # fixed text after them, not yet tokenized
        self.pieces: list[str] = []
        self.n_tokens = 0                   # tokens in the answer (fixed and chosen)
        self.n_decode_calls = 0             # llama_decode calls after the prompt
        self.ttft: float | None = None
        self.truncated = False
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_arr = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one, llama_cpp.llama_token_data_p), size=1, selected=-1, sorted=False)
        self._full = None

    # ---------------------------------------------------------------- low level
    def _tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _flush(self) -> None:
        """Decode the pending tokens in one batch, so the next token's logits are ready."""
        self._settle_text()
        if self.pending:
            if time.perf_counter() > self.deadline:
                raise DecodeTimeout(f"{self.n_tokens} tokens generated")
            self.llm.eval(self.pending)
            self.n_decode_calls += 1
            self.pending = []

    def _settle_text(self) -> None:
        """Tokenize the pending fixed text (all of it at once: consecutive fixed pieces such as
        `"evidence":[` and `"` become the tokens the model itself writes, `":` `["`)."""
        if self.pending_text:
            self.pending.extend(self._tokens(self.pending_text))
            self.pending_text = ""

    def _fixed(self, text: str) -> None:
        if self.truncated or not text:
            return
        before = len(self._tokens(self.pending_text)) if self.pending_text else 0
        added = len(self._tokens(self.pending_text + text)) - before
        if self.n_tokens + added > self.max_tokens:
            self.truncated = True
            return
        self.pending_text += text
        self.pieces.append(text)
        self.n_tokens += added

    def _push(self, token: int) -> None:
        """A chosen token, decoded with the next batch."""
        self._settle_text()
        self.pending.append(token)

    def _allowed(self, sampler, token: int, logit: float) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, logit, 0.0
        self._one_arr.size, self._one_arr.selected = 1, -1
        self._c.llama_sampler_apply(sampler, ctypes.byref(self._one_arr))
        return bool(self._one[0].logit > float("-inf"))

    def _best_allowed(self, sampler, logits) -> int:
        import numpy as np
        token = int(np.argmax(logits))
        if self._allowed(sampler, token, float(logits[token])):
            return token
        if self._full is None:
            from llama_cpp._internals import LlamaTokenDataArray
            self._full = LlamaTokenDataArray(n_vocab=self.n_vocab)
        self._full.copy_logits(logits)
        self._c.llama_sampler_apply(sampler, ctypes.byref(self._full.candidates))
        allowed = self._full.candidates_data.logit[: self._full.candidates.size]
        best = int(np.argmax(allowed))
        if not np.isfinite(allowed[best]):
            raise GrammarDeadEnd("grammar dead end: no token allowed")
        return int(self._full.candidates_data.id[best])

    def _one_token(self, gbnf: str) -> str:
        """One greedy token under `gbnf` (decoding what is pending first); it stays pending."""
        self._flush()
        sampler = self._c.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            raise GrammarDeadEnd("llama.cpp rejected the grammar of the literal options")
        try:
            import numpy as np
            logits = np.ctypeslib.as_array(self._c.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))
            token = self._best_allowed(sampler, logits)
        finally:
            self._c.llama_sampler_free(sampler)
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.t0
        if self._c.llama_vocab_is_eog(self.vocab, token):
            raise GrammarDeadEnd("end of generation chosen inside a literal option")
        piece = self.llm.detokenize([token]).decode("utf-8", "replace")
        self._push(token)
        self.pieces.append(piece)
        self.n_tokens += 1
        if self.n_tokens >= self.max_tokens:
            self.truncated = True
        return piece

    def _free(self, gbnf: str, follow: str = "", opened: str = "") -> str:
        """Greedy tokens under `gbnf` followed by the text `follow` (the first character of what
        comes next, e.g. `,`), until that grammar is complete. The terminator is part of the grammar
        because a value alone is not always prefix-free (`7` may go on to `72`): the model ends the
        value the way it would in the whole answer, by writing what comes next (`",`, `}`). The last
        token stays pending and is decoded with the next fixed text. With no `follow` (a whole
        answer), tokens are generated until the model or the grammar ends it. `opened`: the start of
        the value, already written as fixed text (the grammar is advanced over it)."""
        import numpy as np
        if self.truncated:
            return ""
        if follow:
            gbnf = re.sub(r"(?m)^root ::=", "ragecg-value ::=", gbnf) + f"\nroot ::= ragecg-value {json.dumps(follow)}\n"
        self._flush()
        sampler = self._c.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            raise GrammarDeadEnd("llama.cpp rejected the grammar built from the JSON schema")
        for t in self._tokens(opened) if opened else []:
            self._c.llama_sampler_accept(sampler, t)
        toks: list[int] = []
        try:
            while True:
                logits = np.ctypeslib.as_array(self._c.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))
                token = self._best_allowed(sampler, logits)
                if self.ttft is None:
                    self.ttft = time.perf_counter() - self.t0
                if self._c.llama_vocab_is_eog(self.vocab, token):
                    break                                  # the end chosen (or the only thing allowed)
                self._c.llama_sampler_accept(sampler, token)
                toks.append(token)
                self.n_tokens += 1
                done = bool(follow) and self._allowed(sampler, self.eog, 0.0)
                if done or self.n_tokens >= self.max_tokens:
                    self.truncated = not done
                    self._push(token)                      # decoded with the next fixed text
                    break
                if time.perf_counter() > self.deadline:
                    raise DecodeTimeout(f"{self.n_tokens} tokens generated")
                self.llm.eval([token])
                self.n_decode_calls += 1
        finally:
            self._c.llama_sampler_free(sampler)
        text = self.llm.detokenize(toks).decode("utf-8", "replace")
        self.pieces.append(text)
        return text

    # ---------------------------------------------------------------- the schema walk
    def _value(self, schema: dict, follow: str, item: bool = False) -> None:
        """Generate one value of `schema` and then `follow` (one character, or "" at the end).
        `item`: an array item whose `{` and first property name the model has already chosen."""
        props = _closed_object(schema)
        if props is not None:
            for i, (name, sub) in enumerate(props):
                if not (item and i == 0):
                    self._fixed(("{" if i == 0 else "") + json.dumps(name) + ":")    # `,` came with the value before
                self._value(sub, "," if i < len(props) - 1 else "}")
            self._fixed(follow)
            return
        arr = _object_array(schema)
        if arr is not None:
            item_schema, lo, hi = arr
            head = "{" + json.dumps(_closed_object(item_schema)[0][0]) + ":"   # `{"section":`
            self._fixed("[")
            n = 0
            while not self.truncated:
                # Another item or the end, each spelled with the text around it (`,{"section":`
                # against `]}`; the item's own `}` came with its last value), so the model sees the
                # tokens it would write itself rather than a lone `{`.
                more, close = ("," if n else "") + head, "]" + follow
                opts = ([more] if n < hi else []) + ([close] if n >= lo or n >= hi else [])
                if self._choose(opts) != more:
                    break
                self._value(item_schema, "", item=True)
                n += 1
            return
        literals = _literals(schema)
        if literals is not None and follow and _prefix_free([v + follow for v in literals]):
            self._choose([v + follow for v in literals])
            return
        arr = _literal_array(schema)
        if arr is not None and follow and _prefix_free([v + sep for v in arr[0] for sep in (",", "]" + follow)]):
            values, lo, hi = arr
            # "go on" is spelled with the next item's first character when all items share it
            # (`","`, a token the model writes, rather than `,` then `"`)
            lead = values[0][:1] if all(v[:1] == values[0][:1] for v in values) else ""
            self._fixed("[")
            for n in range(hi):
                # each item spelled with what follows it (`"p_present","` or `"p_present"]}`): the
                # item and the choice to go on or to close the array are one choice among literals
                items = [v[len(lead):] for v in values] if n else values
                more = [v + "," + lead for v in items] if n + 1 < hi else []
                close = ([v + "]" + follow for v in items] if n + 1 >= lo else []) + \
                    (["]" + follow] if n == 0 and lo == 0 else [])
                if self._choose(more + close) not in more:
                    return
            return
        if schema.get("type") == "string" and set(schema) <= {"type", "maxLength", "minLength", "description", "title"}:
            # the opening quote is fixed text, tokenized with what comes before it (`":"`, the token
            # the model writes itself) rather than chosen after `":` (where `""`, an empty text, is
            # close to `"` for a 135M model)
            self._fixed('"')
            self._free(self.grammar_text(schema), follow, opened='"')
            return
        self._free(self.grammar_text(schema), follow)

    def _choose(self, options: list[str]) -> str:
        """The model's greedy choice among literal texts, none the start of another (an enum value
        with what follows it). What all the options still possible share next is fixed text, decoded
        with the next batch rather than chosen token by token (`0.` once the model wrote `0`, the
        rest of `"heart_rate_bpm",` once `"heart` leaves one key); the model is asked only where the
        options part, each time under the grammar of their remaining text. Returns the option
        written ("" when the token limit cut it)."""
        live = list(dict.fromkeys(options))
        done = ""
        while not self.truncated:
            common = live[0][len(done):] if len(live) == 1 else self._shared_tokens_text([o[len(done):] for o in live])
            if common:
                self._fixed(common)
                done += common
                if self.truncated:
                    break
            if len(live) == 1:
                return done
            gbnf = "root ::= " + " | ".join(json.dumps(o[len(done):]) for o in live)
            piece = self._one_token(gbnf)
            done += piece
            live = [o for o in live if o.startswith(done)]
            if not live:                                  # a token past an option's end: cannot happen
                raise GrammarDeadEnd(f"token outside the literal options ({len(options)})")
        return ""

    def _shared_tokens_text(self, rests: list[str]) -> str:
        """The text of the tokens every option's rest starts with, tokenized after the pending fixed
        text as the model would write it: whole tokens only, so that the model still chooses the
        token where the options part (`","` against `"]` after `present`, not a lone `"` first)."""
        ctx = self.pending_text
        seqs = [self._tokens(ctx + r) for r in rests]
        n = 0
        while all(len(q) > n and q[n] == seqs[0][n] for q in seqs):
            n += 1
        text = self.llm.detokenize(seqs[0][:n]).decode("utf-8", "replace")
        if len(text) <= len(ctx) or not all((ctx + r).startswith(text) for r in rests):
            return ""
        return text[len(ctx):]

    def run(self, schema: dict) -> str:
        self._value(schema, "")
        return "".join(self.pieces)
