"""Entry-point rules, the stage trace, the batch contract and the never-masked errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.assets import build_tiny
from ts_notebook.archive import extract_archive
from ts_notebook.handler import Trace, dry_run, make_request
from ts_notebook.handler.trace import ResponseSettings

REQ = make_request(b'{"input": [1, 2, 3, 4]}', "application/json")


def run(tmp: Path, source: str, *, spec: str = "h", batch: int = 1, manifest: dict | None = None) -> Trace:  # type: ignore[type-arg]
    (tmp / f"{spec.split(':')[0]}.py").write_text(textwrap.dedent(source))
    return dry_run(spec, tmp, [REQ] * batch, model_name="m", manifest=manifest)


@pytest.fixture
def eager_dir(assets: Path, tmp_path: Path) -> Path:
    info = build_tiny(
        assets,
        tmp_path,
        extra_files=str(assets / "index_to_name.json"),
        config_file=str(assets / "model-config.yaml"),
    )
    return extract_archive(info.path, tmp_path / "model")


def test_base_handler_subclass_traces_every_stage(eager_dir: Path) -> None:
    import json

    manifest = json.loads((eager_dir / "MAR-INF/MANIFEST.json").read_text())
    trace = dry_run(
        "handler.py",
        eager_dir,
        [REQ, REQ],
        model_name="tiny",
        manifest=manifest,
        model_yaml_config={"handler": {"top_k": 2}},
    )
    assert trace.ok, trace.failure
    assert [s.name for s in trace.stages] == ["initialize", "preprocess", "inference", "postprocess"]
    assert trace.entry_kind == "class"
    assert trace.stage("preprocess").summary.startswith("Tensor[2, 4] float32 cpu: [[1.0, 2.0, 3.0, 4.0]")
    assert trace.stage("inference").summary.startswith("Tensor[2, 3] float32")
    assert trace.data == [{"body": {"input": [1, 2, 3, 4]}}] * 2
    assert trace.system_properties == {
        "model_dir": str(eager_dir.resolve()),
        "gpu_id": None,
        "batch_size": 2,
        "server_name": "MMS",
        "server_version": "0.12.0",
        "limit_max_image_pixels": True,
    }
    assert len(trace.result) == 2 and len(trace.result[0]) == 3
    assert [m.name for m in trace.metrics] == ["HandlerTime"]
    assert "ts" not in sys.modules  # the compatibility layer is not left installed


def test_function_handle_wins_over_a_class(tmp_path: Path) -> None:
    trace = run(
        tmp_path,
        """
        class Helper:
            pass

        def handle(data, context):
            if data is None:
                return None
            return [row["body"]["input"][0] for row in data]
    """,
    )
    assert trace.ok and trace.entry_kind == "function"
    assert [s.name for s in trace.stages] == ["initialize", "handle"]
    assert trace.result == [1]


def test_module_function_entry_point(tmp_path: Path) -> None:
    trace = run(
        tmp_path,
        """
        calls = []

        def my_entry(data, context):
            calls.append(data)
            return None if data is None else [len(calls)]
    """,
        spec="h:my_entry",
    )
    assert trace.ok and trace.result == [2]  # initialize called my_entry(None, ctx) first


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("class A:\n    pass\nclass B:\n    pass\n", "exactly one class defined in h, found A, B"),
        ("x = 1\n", "exactly one class defined in h, found none"),
        ("class A:\n    def initialize(self, ctx):\n        pass\n", "class A has no handle(data, context) method"),
    ],
)
def test_entry_point_rules(tmp_path: Path, source: str, fragment: str) -> None:
    trace = run(tmp_path, source)
    assert trace.failure is not None and trace.failure.stage == "initialize"
    assert fragment in trace.failure.message


def test_missing_function_after_colon(tmp_path: Path) -> None:
    trace = run(tmp_path, "def handle(d, c):\n    return d\n", spec="h:nope")
    assert trace.failure is not None and "no function 'nope' in h, and TorchServe needs" in trace.failure.message


def test_named_function_missing_falls_back_to_the_one_class_like_torchserve(tmp_path: Path) -> None:
    trace = run(
        tmp_path,
        "class H:\n    def initialize(self, ctx):\n        pass\n\n    def handle(self, data, ctx):\n"
        "        return [1 for _ in data]\n",
        spec="h:handle",
    )
    assert trace.ok and trace.entry_kind == "class"


def test_imported_handle_counts_as_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "common.py").write_text("def handle(data, context):\n    return None if data is None else ['shared']\n")
    trace = run(tmp_path, "from common import handle\n")
    assert trace.ok and trace.result == ["shared"]


def test_dry_run_leaves_the_kernels_modules_and_path_alone(tmp_path: Path) -> None:
    import torch

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, value in ((a, 1), (b, 2)):
        folder.mkdir()
        (folder / "model.py").write_text(f"VALUE = {value}\n")
        (folder / "h.py").write_text(
            "import sys\nimport model\n\ndef handle(data, context):\n"
            "    sys.path.insert(0, '/tmp/leaked')\n    return None if data is None else [model.VALUE]\n"
        )
    modules, path = set(sys.modules), list(sys.path)
    assert dry_run("h", a, [REQ], model_name="m", manifest=None).result == [1]
    assert dry_run("h", b, [REQ], model_name="m", manifest=None).result == [2]  # not a's cached model.py
    assert set(sys.modules) == modules and sys.path == path
    # A model dir that holds a virtualenv, or is a site-packages, must not unload the kernel's torch.
    (tmp_path / "h2.py").write_text("import torch\n\ndef handle(data, context):\n    return [torch.__name__]\n")
    for folder in (Path(torch.__file__).parents[2], Path(torch.__file__).parents[1]):
        assert dry_run("h2", folder, [REQ], model_name="m", manifest=None, handler_dir=tmp_path).ok
        assert sys.modules["torch"] is torch


def test_batch_size_is_the_configured_one(tmp_path: Path) -> None:
    (tmp_path / "h.py").write_text("def handle(data, context):\n    return [context.system_properties['batch_size']]\n")
    trace = dry_run("h", tmp_path, [REQ], model_name="m", manifest=None, model_yaml_config={"batchSize": 4})
    assert trace.result == [4]


def test_exception_in_initialize_points_at_the_handler_line(tmp_path: Path) -> None:
    trace = run(
        tmp_path,
        """
        class H:
            def initialize(self, context):
                self.ready = True
                raise FileNotFoundError("weights.bin is not in model_dir")

            def handle(self, data, context):
                return data
    """,
    )
    f = trace.failure
    assert f is not None and f.stage == "initialize"
    assert (f.error_type, f.message) == ("FileNotFoundError", "weights.bin is not in model_dir")
    assert f.where is not None and (Path(f.where.file).name, f.where.line, f.where.function) == (
        "h.py",
        5,
        "initialize",
    )
    assert str(f).startswith("initialize failed at h.py, line 5, in initialize: raise FileNotFoundError(")


def test_import_error_in_the_handler_is_not_masked(tmp_path: Path) -> None:
    """TorchServe turns this into 'No module named ts.torch_handler.h'; we show the real cause."""
    trace = run(tmp_path, "import package_that_is_not_installed\n\ndef handle(data, context):\n    return data\n")
    f = trace.failure
    assert f is not None and f.stage == "initialize"
    assert f.error_type == "ModuleNotFoundError"
    assert "importing handler module 'h' failed at h.py, line 1" in f.message
    assert "No module named 'package_that_is_not_installed'" in f.message


def test_syntax_error_in_the_handler_names_the_line(tmp_path: Path) -> None:
    trace = run(tmp_path, "def handle(data, context):\n    return [\n")
    assert trace.failure is not None and trace.failure.error_type == "SyntaxError"
    assert trace.failure.where is not None and trace.failure.where.line == 2


@pytest.mark.parametrize(
    ("ret", "fragment"),
    [
        ("[1]", "handle returned a list of 1 for a batch of 3"),
        ("{'a': 1}", "handle returned a dict, not a list"),
    ],
)
def test_batch_contract(tmp_path: Path, ret: str, fragment: str) -> None:
    trace = run(tmp_path, f"def handle(data, context):\n    return None if data is None else {ret}\n", batch=3)
    assert trace.failure is not None and trace.failure.error_type == "BatchContractError"
    assert fragment in trace.failure.message


def test_exception_in_a_stage_is_attributed_to_that_stage(eager_dir: Path) -> None:
    (eager_dir / "handler.py").write_text(
        (eager_dir / "handler.py")
        .read_text()
        .replace("return [[round", "raise RuntimeError('no labels')\n        return [[round")
    )
    import json

    manifest = json.loads((eager_dir / "MAR-INF/MANIFEST.json").read_text())
    trace = dry_run("handler.py", eager_dir, [REQ], model_name="tiny", manifest=manifest)
    assert [(s.name, s.ok) for s in trace.stages] == [
        ("initialize", True),
        ("preprocess", True),
        ("inference", True),
        ("postprocess", False),
    ]
    assert trace.failure is not None and trace.failure.stage == "postprocess"
    assert trace.failure.where is not None and trace.failure.where.function == "postprocess"


def test_edited_handler_is_reloaded(tmp_path: Path) -> None:
    assert run(tmp_path, "def handle(data, context):\n    return None if data is None else [1]\n").result == [1]
    assert run(tmp_path, "def handle(data, context):\n    return None if data is None else [2]\n").result == [2]


def test_context_surface_and_response_settings(tmp_path: Path) -> None:
    trace = run(
        tmp_path,
        """
        from ts.context import Context
        from ts.utils.util import PredictionException

        def handle(data, context):
            if data is None:
                assert isinstance(context, Context)
                return None
            assert context.get_request_header(0, "Content-Type") == "application/json"
            assert context.get_request_header(0, "content-type") is None  # case-sensitive
            context.set_response_content_type(0, "text/plain")
            context.set_response_status(201, "Created", 0)
            context.metrics.add_counter("Seen", 1)
            return [context.get_request_id(0)]
    """,
    )
    assert trace.ok, trace.failure
    assert trace.result == [trace.request_ids[0]]
    assert trace.responses == [ResponseSettings(201, "Created", {"content-type": "text/plain"})]
    assert [m.name for m in trace.metrics] == ["Seen"]


def test_ts_helpers_work_without_torchserve(tmp_path: Path) -> None:
    (tmp_path / "index_to_name.json").write_text('{"0": ["n01", "cat"], "1": "dog"}')
    trace = run(
        tmp_path,
        """
        from ts.handler_utils.utils import send_intermediate_predict_response
        from ts.utils.util import load_label_mapping, map_class_to_label

        def handle(data, context):
            if data is None:
                return None
            mapping = load_label_mapping("index_to_name.json")
            send_intermediate_predict_response(["partial"], context.request_ids, "Intermediate", 200, context)
            return map_class_to_label([[0.25, 0.75]], mapping)
    """,
    )
    assert trace.ok, trace.failure
    assert trace.result == [{"cat": 0.25, "dog": 0.75}]
    assert trace.intermediate[0]["ret"] == ["partial"]


def test_builtin_needing_torchvision_says_so(tmp_path: Path) -> None:
    trace = dry_run("image_classifier", tmp_path, [REQ], model_name="m", manifest=None)
    assert trace.failure is not None
    assert "built-in handler 'image_classifier' needs torchvision" in trace.failure.message


def test_builtin_base_handler_resolves(eager_dir: Path) -> None:
    import json

    manifest = json.loads((eager_dir / "MAR-INF/MANIFEST.json").read_text())
    trace = dry_run(
        "base_handler",
        eager_dir,
        [make_request(b"[[1, 2, 3, 4]]", "application/json")],
        model_name="tiny",
        manifest=manifest,
    )
    # TorchServe's BaseHandler does torch.as_tensor(data) on the list of dicts, which fails the same way there.
    assert trace.failure is not None and trace.failure.stage == "preprocess"
    assert trace.entry_kind == "class"
