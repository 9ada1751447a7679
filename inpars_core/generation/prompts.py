"""Prompts for query generation: InPars few-shot, good-vs-bad question, claims, in-domain few-shot
(Promptagator-style, from a dataset's train qrels) and user templates from a file.

Every prompt has an id and a hash of its exact text, both recorded with each generated query.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from inpars_core.datasets.beir import Dataset
from inpars_core.errors import ConfigError, InputFormatError, UnknownNameError
from inpars_core.generation.base import RenderedPrompt
from inpars_core.records import Document

SYSTEM_MESSAGE = (
    "You write search queries. Given a document, reply with one query, on one line, that a "
    "person would type to find this document. Reply with the query only."
)
DOCUMENT_PLACEHOLDER = "{document}"

# Document -> query examples written for InPars Lab (not taken from any dataset).
OUR_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "Low-dose aspirin and cardiovascular events in adults with diabetes. In a randomised trial "
        "of 15,480 adults with diabetes and no cardiovascular disease, aspirin reduced serious "
        "vascular events but increased major bleeding.",
        "does aspirin prevent heart attacks in people with diabetes",
        "what is aspirin",
    ),
    (
        "Vitamin D supplementation to prevent acute respiratory infections. A meta-analysis of 25 "
        "trials found that daily or weekly vitamin D lowered the risk of respiratory infection, "
        "most in those with very low baseline levels.",
        "vitamin D supplements reduce respiratory infections",
        "vitamin",
    ),
    (
        "Sleep deprivation impairs memory consolidation in the hippocampus. Mice kept awake for "
        "five hours after training showed weaker hippocampal synaptic plasticity and poorer "
        "recall.",
        "how does lack of sleep affect memory",
        "mice study results",
    ),
)


@dataclass(frozen=True)
class PromptTemplate:
    """A few-shot prompt: ``text`` holds ``{document}`` where the document goes."""

    prompt_id: str
    text: str
    example_queries: tuple[str, ...] = ()
    example_query_ids: tuple[str, ...] = ()
    example_doc_ids: tuple[str, ...] = ()
    max_document_words: int = 256

    @property
    def prompt_hash(self) -> str:
        """sha256 (16 hex digits) of the exact template text."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def render(self, document: Document, *, chat: bool) -> RenderedPrompt:
        """Fill in ``document`` (truncated to ``max_document_words``) for a base or chat model."""
        words = document.contents.split()
        body = " ".join(words[: self.max_document_words])
        text = self.text.replace(DOCUMENT_PLACEHOLDER, body)
        messages: tuple[dict[str, str], ...] = ()
        if chat:
            messages = (
                {"role": "system", "content": SYSTEM_MESSAGE},
                {"role": "user", "content": text},
            )
        return RenderedPrompt(text=text, messages=messages)


def _few_shot(
    examples: list[tuple[str, str]], query_label: str, bad: list[str] | None = None
) -> str:
    blocks = []
    for number, (doc, query) in enumerate(examples, start=1):
        block = f"Example {number}:\nDocument: {doc}\n{query_label}: {query}"
        if bad is not None:
            block += f"\nBad Question: {bad[number - 1]}"
        blocks.append(block)
    final = f"Example {len(examples) + 1}:\nDocument: {DOCUMENT_PLACEHOLDER}\n{query_label}:"
    return "\n\n".join([*blocks, final])


def inpars_prompt() -> PromptTemplate:
    """InPars-v1 style few-shot prompt ("Relevant Query:") with our own examples."""
    examples = [(doc, good) for doc, good, _ in OUR_EXAMPLES]
    return PromptTemplate(
        "inpars", _few_shot(examples, "Relevant Query"), tuple(q for _, q in examples)
    )


def good_bad_question_prompt() -> PromptTemplate:
    """InPars "good vs bad question" prompt: each example shows a good and a bad question."""
    examples = [(doc, good) for doc, good, _ in OUR_EXAMPLES]
    bad = [b for _, _, b in OUR_EXAMPLES]
    return PromptTemplate(
        "inpars-gbq",
        _few_shot(examples, "Good Question", bad),
        tuple(q for _, q in examples) + tuple(bad),
    )


#: The same three documents with a claim each (a declarative statement the document supports):
#: the form of fact-checking queries such as SciFact's, where a question-style prompt writes
#: questions the test queries never are (diagnosis P13).
OUR_CLAIMS: tuple[str, ...] = (
    "aspirin lowers the risk of serious vascular events in adults with diabetes",
    "vitamin D supplementation reduces the risk of acute respiratory infection",
    "sleep deprivation impairs memory consolidation in the hippocampus",
)


def claim_prompt() -> PromptTemplate:
    """InPars few-shot prompt writing claims ("Claim:"), not questions: for collections whose
    queries are statements to verify (SciFact, Climate-FEVER)."""
    examples = [(doc, claim) for (doc, _, _), claim in zip(OUR_EXAMPLES, OUR_CLAIMS, strict=True)]
    return PromptTemplate("inpars-claim", _few_shot(examples, "Claim"), OUR_CLAIMS)


def in_domain_prompt(
    dataset: Dataset,
    *,
    split: str = "train",
    shots: int = 3,
    seed: int = 0,
    max_example_words: int = 80,
) -> PromptTemplate:
    """Promptagator-style few-shot from ``split`` qrels of ``dataset``.

    The example queries and documents are recorded on the template; the generation stage never
    writes queries for the example documents, and evaluation must exclude the example queries.
    """
    qrels = dataset.qrels(split)
    pairs = sorted(
        (q, d)
        for q, judged in qrels.items()
        for d, rel in judged.items()
        if rel > 0 and q in dataset.queries and d in dataset.corpus
    )
    if len(pairs) < shots:
        raise ConfigError(f"{dataset.name}/{split} has {len(pairs)} judged pairs, need {shots}")
    chosen: list[tuple[str, str]] = []
    used_queries: set[str] = set()
    for q, d in random.Random(seed).sample(pairs, len(pairs)):
        if q not in used_queries:
            chosen.append((q, d))
            used_queries.add(q)
        if len(chosen) == shots:
            break
    examples = [
        (" ".join(dataset.corpus[d].contents.split()[:max_example_words]), dataset.queries[q].text)
        for q, d in chosen
    ]
    return PromptTemplate(
        f"in-domain-{dataset.name}-{split}-{shots}shot-s{seed}",
        _few_shot(examples, "Relevant Query"),
        example_queries=tuple(text for _, text in examples),
        example_query_ids=tuple(q for q, _ in chosen),
        example_doc_ids=tuple(d for _, d in chosen),
    )


_EXAMPLE_LINE = re.compile(
    r"^(?:Relevant Query|Query|Good Question|Question|Claim):[ \t]*(\S.*)$", re.M
)


def prompt_from_file(path: Path) -> PromptTemplate:
    """A user template: any text holding ``{document}`` once; example queries are read from
    lines such as ``Query: ...`` or ``Relevant Query: ...`` (for the example-copy filter)."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, "not found", fix="give a template file or a built-in name")
    text = path.read_text(encoding="utf-8")
    count = text.count(DOCUMENT_PLACEHOLDER)
    if count != 1:
        raise InputFormatError(
            path,
            f"holds {count} '{DOCUMENT_PLACEHOLDER}' placeholders, expected exactly 1",
            fix=f"put '{DOCUMENT_PLACEHOLDER}' where the document goes, once",
        )
    return PromptTemplate(
        f"file:{path.name}",
        text.rstrip("\n") if text.endswith("\n") else text,
        tuple(_EXAMPLE_LINE.findall(text)),
    )


BUILTIN_PROMPTS = {
    "inpars": inpars_prompt,
    "inpars-gbq": good_bad_question_prompt,
    "inpars-claim": claim_prompt,
}
IN_DOMAIN = "in-domain"


def resolve_prompt(
    name_or_file: str,
    dataset: Dataset | None = None,
    *,
    seed: int = 0,
    max_document_words: int | None = None,
) -> PromptTemplate:
    """A built-in prompt name (``inpars``, ``inpars-gbq``, ``inpars-claim``, ``in-domain``) or a
    template file."""
    if name_or_file in BUILTIN_PROMPTS:
        template = BUILTIN_PROMPTS[name_or_file]()
    elif name_or_file == IN_DOMAIN:
        if dataset is None:
            raise ConfigError("the in-domain prompt needs a dataset with train qrels")
        template = in_domain_prompt(dataset, seed=seed)
    elif Path(name_or_file).exists() or "/" in name_or_file or name_or_file.endswith(".txt"):
        template = prompt_from_file(Path(name_or_file))
    else:
        raise UnknownNameError("prompt", name_or_file, [*BUILTIN_PROMPTS, IN_DOMAIN, "<file>"])
    if max_document_words is not None:
        from dataclasses import replace

        template = replace(template, max_document_words=max_document_words)
    return template
