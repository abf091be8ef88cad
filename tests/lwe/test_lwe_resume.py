"""A run interrupted mid-way (a killed kernel, a dead server) resumes from its store: nothing lost, nothing twice."""
import json

import pytest

from nblib import lwe
from nblib.lwe import scripted


class Interrupting(scripted.ScriptedJudge):
    """A scripted judge whose process is 'killed' (KeyboardInterrupt) at its k-th call."""

    def __init__(self, *a, stop_at: int, **k):
        super().__init__(*a, **k)
        self.stop_at = stop_at

    def generate(self, prompt, *a, **k):
        if self.calls + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().generate(prompt, *a, **k)


@pytest.mark.parametrize("method,stop_at", [("selective", 17), ("lwe", 40), ("vanilla", 9)])
def test_interrupted_run_resumes_without_losing_or_duplicating(tmp_path, method, stop_at):
    cases = lwe.stream(lwe.load("hhh"), n=16)
    path = tmp_path / "store.jsonl"
    cfg = lwe.JudgeConfig(batch_size=4)
    first = Interrupting(cases, 0.5, stop_at=stop_at)
    with pytest.raises(KeyboardInterrupt):
        lwe.run(method, first, cases, cfg, store=lwe.ResponseStore(path))
    made = first.calls                                    # calls answered before the interruption
    assert len(path.read_text().splitlines()) == made     # each one on disk, once
    again = scripted.ScriptedJudge(cases, 0.5)
    resumed = lwe.run(method, again, cases, cfg, store=lwe.ResponseStore(path))
    whole = lwe.run(method, scripted.ScriptedJudge(cases, 0.5), cases, cfg)
    assert resumed.status == "complete" and resumed.n == whole.n == len(cases)
    assert again.calls == whole.generations() - made      # only the missing calls are made
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == whole.generations()   # no call stored twice
    assert [r["id"] for r in resumed.cases] == [c.id for c in cases]   # no case lost or judged twice
    assert [r["verdict"] for r in resumed.cases] == [r["verdict"] for r in whole.cases]
    assert resumed.generations() == whole.generations()


def test_a_read_only_store_answers_from_its_file_and_never_writes_it(tmp_path):
    cases = lwe.stream(lwe.load("hhh"), n=8)
    path = tmp_path / "shipped.jsonl"
    lwe.run("selective", scripted.ScriptedJudge(cases, 0.5), cases[:4], store=lwe.ResponseStore(path))
    before = path.read_bytes()
    judge = scripted.ScriptedJudge(cases, 0.5)
    rec = lwe.run("selective", judge, cases, store=lwe.ResponseStore(path, write=False))
    assert rec.n == 8 and path.read_bytes() == before
    assert 0 < judge.calls < rec.generations()        # the first four cases came from the file
