"""The prompts of the four judges, in our own words after the official LWE code (snumprlab/lwe, MIT).

Every prompt is a chat (a list of {"role", "content"} messages), so the same text goes to a local model's
chat template and to an OpenAI-compatible /v1/chat/completions. Answers are clipped to `max_chars` so
that a long answer cannot crowd the prompt of a small model out of its context.
"""
from __future__ import annotations

INITIAL_META_PROMPT = (
    "You write evaluation prompts for a judge who compares two answers, A and B, to the same user question. "
    "Read the example and write an evaluation prompt made for it:\n"
    "1. List the criteria that matter for this particular question: whether each answer is correct and honest, "
    "whether it really helps the user, whether it avoids harm, and whether it follows the user's instructions.\n"
    "2. Give short, numbered, step-by-step instructions for checking both answers against each criterion, "
    "with what counts as a decisive difference and what is only a matter of style.\n"
    "3. Remind the judge that the order of the answers and their length must not influence the decision.\n"
    "4. End by telling the judge to give the final verdict strictly as [[A]] if answer A is better or [[B]] "
    "if answer B is better, with no tie.\n"
    "Output only the evaluation prompt."
)

RUBRIC_RULES = (
    "Rules: do not judge the example yourself; write only the evaluation prompt; do not copy the example's "
    "text or these instructions into your output."
)

VANILLA_SYSTEM = (
    "Please act as an impartial judge and evaluate the two answers that two AI assistants gave to the user "
    "question below. Choose the answer that follows the user's instructions and answers the question better, "
    "considering helpfulness, honesty, harmlessness, relevance, accuracy and level of detail. Compare the two "
    "answers and give a short explanation. The order in which the answers are shown and their length must not "
    "influence your decision. Be as objective as possible. After your explanation, output your final verdict "
    "strictly in this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better."
)

VERDICT_LINE = "After your evaluation, output your final verdict strictly as [[A]] or [[B]]."

FEEDBACK_HEADER = "Meta-evaluation: critique the judgment below."
FEEDBACK_STEPS = (
    "Check the judgment step by step: 1. restate the criteria of the evaluation prompt; 2. list the claims "
    "the judgment makes; 3. compare each claim with the criteria; 4. look for fallacies (unsupported "
    "generalisation, circular reasoning, favouring a position or a length); 5. name its weakest point; "
    "6. score it from 1 to 5; 7. decide a label, \"absolutely confident\" or \"not sure\"; 8. write one to "
    "three short, reusable tips for writing better evaluation prompts in future. Return a dict with the "
    "keys \"score\", \"label\", \"learned tips\" and \"reasoning\"."
)

UPDATE_HEADER = "Rewrite the meta-prompt."
UPDATE_RULES = (
    "Above are the current meta-prompt and recent evaluations made with it, each with its self-feedback. "
    "Rewrite the meta-prompt so that the evaluation prompts it produces become more accurate and more "
    "reliable. Keep what works. Add only new, general, reusable tips that are not already in it; do not "
    "mention the examples. It must still ask for an evaluation prompt that ends with the verdict format "
    "[[A]] or [[B]]. Output only the new meta-prompt."
)

FALLBACK_CONTINUATION = "\n\nFinal verdict: [["
SCORE_CONTINUATION = "[["          # the log-prob judge scores the verdict token right after the prompt
VERDICT_OPTIONS = ("A", "B")


def clip(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters, with a marker when it was cut."""
    text = text.strip()
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


def example_block(question: str, answer_a: str, answer_b: str, max_chars: int = 600) -> str:
    """The example as every judge sees it: the question, then answer A, then answer B."""
    return (f"[User Question]\n{clip(question, max_chars)}\n\n"
            f"[The Start of Assistant A's Answer]\n{clip(answer_a, max_chars)}\n[The End of Assistant A's Answer]\n\n"
            f"[The Start of Assistant B's Answer]\n{clip(answer_b, max_chars)}\n[The End of Assistant B's Answer]")


def vanilla(example: str) -> list[dict]:
    """The fixed pairwise judge (MT-Bench style, no tie option)."""
    return [{"role": "system", "content": VANILLA_SYSTEM}, {"role": "user", "content": example}]


def rubric(meta_prompt: str, example: str) -> list[dict]:
    """Ask the meta-prompt for an evaluation prompt made for this example."""
    return [{"role": "user", "content": f"{meta_prompt}\n\n{RUBRIC_RULES}\n\n[Example]\n{example}"}]


def judge(evaluation_prompt: str, example: str) -> list[dict]:
    """Judge the example with a generated evaluation prompt."""
    return [{"role": "system", "content": evaluation_prompt.strip() or VERDICT_LINE},
            {"role": "user", "content": f"{example}\n\n{VERDICT_LINE}"}]


def feedback(meta_prompt: str, evaluation_prompt: str, example: str, judgment: str, max_chars: int = 600) -> list[dict]:
    """The judge critiques its own judgment (no label, no reference answer)."""
    return [{"role": "user", "content": (
        f"{FEEDBACK_HEADER}\n\n[Meta-prompt]\n{clip(meta_prompt, 4 * max_chars)}\n\n"
        f"[Evaluation prompt]\n{clip(evaluation_prompt, max_chars)}\n\n[Example]\n{example}\n\n"
        f"[Judgment]\n{clip(judgment, max_chars)}\n\n{FEEDBACK_STEPS}")}]


def update(meta_prompt: str, records: list[dict], max_chars: int = 300) -> list[dict]:
    """Ask for a rewritten meta-prompt from the batch's (evaluation prompt, example, judgment, feedback)."""
    parts = [f"{UPDATE_HEADER}\n\n[Current meta-prompt]\n{meta_prompt}"]
    for i, r in enumerate(records, 1):
        parts.append(f"[Evaluation {i}]\nEvaluation prompt: {clip(r['rubric'], max_chars)}\n"
                     f"Question: {clip(r['question'], max_chars // 2)}\n"
                     f"Judgment: {clip(r['judgment'], max_chars)}\nSelf-feedback: {clip(r['feedback'], max_chars)}")
    parts.append(UPDATE_RULES)
    return [{"role": "user", "content": "\n\n".join(parts)}]
