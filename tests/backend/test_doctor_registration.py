"""A registration whose workers fail to load answers with the doctor's top findings after TorchServe's
words, and the notebook's view of the model (what the dashboard shows) keeps them until it loads."""

from __future__ import annotations

from pathlib import Path

from tests.backend.conftest import Models
from tests.backend.helpers import Backend
from tests.doctor.cases import pairs
from ts_notebook.records_json import workers_from_json
from ts_notebook.widgets.models import ModelsView


def test_failed_registration_says_why_and_how_to_fix(backend: Backend, models: Models, store: Path) -> None:
    broken, fixed, _ = pairs()["missing_helper"]
    broken.build(store)
    reply = models.register("helperless.mar", "helperless", expect=500, initial_workers=1)
    message = reply.json()["message"]
    assert message.startswith("Failed to start workers for model helperless version: 1.0. Cause: ")
    assert "Doctor: #2 helper module not packaged" in message and "--extra-files helper.py" in message
    assert "No module named 'ts.torch_handler.handler'" in message  # what TorchServe would have shown

    views = {v.model: v for v in workers_from_json(backend.mgmt("GET", "/ts_notebook/workers").json())}
    failure = views["helperless"].load_failure
    assert failure is not None and "Doctor: #2" in failure
    described = backend.describe("helperless")[0]
    assert "loadFailure" not in described  # TorchServe's describe stays TorchServe's
    table = ModelsView(lambda *_: None)
    table.models, table.versions = [described], [views["helperless"]]
    assert "failed to load" in repr(table)
    assert "tsn-failure" in table._table.value and "--extra-files helper.py" in table._table.value

    # the fixed twin under a new version loads, and its view carries no failure
    fixed.build(store / "doctor-fixed")
    (store / "doctor-fixed" / "helperless.mar").rename(store / "helperless_fixed.mar")
    backend.mgmt("DELETE", "/models/helperless")
    models.register("helperless_fixed.mar", "helperless", initial_workers=1)
    views = {v.model: v for v in workers_from_json(backend.mgmt("GET", "/ts_notebook/workers").json())}
    assert views["helperless"].load_failure is None
