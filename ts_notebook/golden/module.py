"""The text of a golden test module: plain pytest, importing only pytest, the stdlib and ts_notebook."""

from __future__ import annotations

import datetime
import json

MARKER = "# Written by ts_notebook.golden.write_tests (%ts_serve requests --to-pytest): served requests as tests."
MODEL_ENV = "TS_NOTEBOOK_GOLDEN_MODEL"
URL_ENV = "TS_NOTEBOOK_GOLDEN_URL"

_HEAD = '''{marker}
"""Model "{model}" answers its recorded requests as it answered them when served.

Each test {how}
and compares the answer with the one that was served: JSON with floats within RTOL/ATOL (NaN equal
to NaN, dict keys and list lengths exact), text and bytes exactly, and the status. The requests
(their data rows and headers exactly, bytes as files) and the served answers are in {folder}/.
Written on {day} from {count} served request(s) of model "{model}". Run them:

    pytest {name}

and {env_help}:

    {env}=... pytest {name}
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ts_notebook import golden

REQUESTS = Path(__file__).with_name({folder_literal})
'''

_DRY_RUN = '''MODEL = os.environ.get({env_literal}, {target})
RTOL = {rtol}
ATOL = {atol}
REQUEST_IDS = [
{ids}
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive extracted (or the model folder copied) once for all the tests here."""
    return golden.unpack(MODEL, tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize("request_id", REQUEST_IDS)
def test_answers_as_served(request_id: str, model_dir: Path) -> None:
    recorded = golden.load_request(REQUESTS / request_id)
    answer = golden.dry_run_answer(recorded, model_dir)
    found = golden.compare_answers(recorded.answer, answer, rtol=RTOL, atol=ATOL)
    if not found.equal:
        pytest.fail(golden.failure_text(recorded, answer, found), pytrace=False)
'''

_URL = """URL = os.environ.get({env_literal}, {target})
KEY_FILE = {key_file}  # the server's inference token is read from here (or TS_NOTEBOOK_INFERENCE_KEY)
RTOL = {rtol}
ATOL = {atol}
REQUEST_IDS = [
{ids}
]


@pytest.mark.parametrize("request_id", REQUEST_IDS)
def test_answers_as_served(request_id: str) -> None:
    recorded = golden.load_request(REQUESTS / request_id)
    answer = golden.post_answer(recorded, URL, key=golden.inference_key(KEY_FILE))
    found = golden.compare_answers(recorded.answer, answer, rtol=RTOL, atol=ATOL)
    if not found.equal:
        pytest.fail(golden.failure_text(recorded, answer, found), pytrace=False)
"""


def module_text(
    *,
    name: str,
    folder: str,
    model: str,
    request_ids: list[str],
    target: str,
    url: bool,
    key_file: str | None,
    rtol: float,
    atol: float,
) -> str:
    """The module: ``target`` is the archive or model folder to replay through, or (``url``) the URL."""
    how = (
        "sends one served request again to a served URL (its recorded body and headers),"
        if url
        else "replays one served request through the handler of the model's archive or folder in this\n"
        "process (ts_notebook's dry run, a batch of one),"
    )
    env = URL_ENV if url else MODEL_ENV
    head = _HEAD.format(
        marker=MARKER,
        model=model,
        how=how,
        folder=folder,
        day=datetime.date.today().isoformat(),
        count=len(request_ids),
        name=name,
        env=env,
        env_help="to send them to another server" if url else "to replay them through another archive or model folder",
        folder_literal=_literal(folder),
    )
    ids = "\n".join(f"    {_literal(rid)}," for rid in request_ids)
    body = (_URL if url else _DRY_RUN).format(
        env_literal=_literal(env),
        target=_literal(target),
        key_file=_literal(key_file) if key_file else "None",
        rtol=repr(rtol),
        atol=repr(atol),
        ids=ids,
    )
    return head + "\n" + body


def _literal(text: str) -> str:
    """A Python string literal in double quotes (JSON's string syntax is Python's for these)."""
    return json.dumps(text, ensure_ascii=False)
