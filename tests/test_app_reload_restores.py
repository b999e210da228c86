"""What a reload (a new session of the same owner) shows again: the runs' timings, Compare's and Explore's last
results, without training or generating anything."""

import pandas as pd
import pytest
from app_helpers import TRAIN

from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui.handlers import data, model, train
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


def _page(owner: str = "") -> tuple[Session, str]:
    """A page of the browser whose owner key is ``owner`` (a new one when empty)."""
    page = Session(Workbench(ModelRegistry()))
    return page, page.adopt_owner(owner)


@pytest.fixture(scope="module")
def trained(files):
    """An owner with a RED run trained through the Train tab, and that page closed: (owner key, run label)."""
    first, owner = _page()
    model.load_model(first, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(first, str(files[1]), None, 0.1, 0, 64)
    list(train.train(first, ["RED"], "full", ["ffn"], **TRAIN))
    [label] = first.workbench.run_labels()
    first.close()
    return owner, label


def test_a_reload_shows_the_set_up_and_step_time_of_earlier_runs(trained):
    owner, label = trained
    page, _ = _page(owner)
    model.restore_last(page)
    record = page.workbench.run(label).record  # read again from the run store
    assert record.setup_seconds > 0 and record.seconds_per_step > 0
    _, table = train.show(page, [label])
    row = table.iloc[0]
    assert pd.notna(row["set-up (s)"]) and pd.notna(row["s/step"])
    assert (row["set-up (s)"], row["s/step"]) == (round(record.setup_seconds, 1), round(record.seconds_per_step, 2))
    page.close()
