"""`make spread`'s measures (hack/spread_report.py): one owner's largest share per node."""

from __future__ import annotations

import spread_report
from spread_report import OWNERS, Run, largest_share, least_share


def test_the_largest_share_is_that_of_the_node_holding_most_replicas() -> None:
    assert largest_share({"a-0": "n1", "a-1": "n2", "a-2": "n1", "a-3": "n3"}) == 0.5
    assert largest_share({}) == 0.0


def test_the_least_share_spreads_the_replicas_as_evenly_as_the_nodes_allow() -> None:
    assert least_share(6, 3) == 2 / 6
    assert least_share(8, 3) == 3 / 8
    assert least_share(4, 7) == 1 / 4


def test_the_verdict_compares_medians_owner_by_owner() -> None:
    chat = next(o for o in OWNERS if o.name == "chat")
    train = next(o for o in OWNERS if o.name == "train")

    def run(scheduler: str, chat_nodes: list[str]) -> Run:
        bound = {f"chat-{i}": (chat, node) for i, node in enumerate(chat_nodes)}
        bound["train-0"] = (train, "h100-0")
        return Run(scheduler, 42, bound, pending=0)

    stacked = run("default", ["h100-0"] * 3 + ["h100-1"] * 3)
    spread = run("ours", ["h100-0", "h100-1", "h100-2"] * 2)
    assert (stacked.share(chat), spread.share(chat)) == (0.5, 2 / 6)
    # One of ours' three chat GPUs on h100-0 sits beside the batch pod there: 2 of 6.
    assert spread.colocated() == 100 * 2 / 6
    assert spread.on_premium() == 100.0

    text = spread_report.report([stacked, spread], "test", 1.0)
    assert (
        "| chat | 6 x 1 GPU | 0.17 / 0.33 | 0.50 [0.50-0.50] | 0.33 [0.33-0.33] | holds |" in text
    )
    worse = run("ours", ["h100-0"] * 6)
    text = spread_report.report(
        [run("default", ["h100-0", "h100-1", "h100-2"] * 2), worse], "test", 1.0
    )
    assert "| 0.33 [0.33-0.33] | 1.00 [1.00-1.00] | **does not hold** |" in text
