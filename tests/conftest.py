import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MODELS = sorted(FIXTURES.glob("*.tflite"))


def pytest_generate_tests(metafunc):
    if "fixture_model" in metafunc.fixturenames:
        metafunc.parametrize("fixture_model", MODELS, ids=[m.stem for m in MODELS])


@pytest.fixture(scope="session")
def inspect_schema():
    return json.loads((ROOT / "schemas" / "inspect.schema.json").read_text())


@pytest.fixture(scope="session")
def patch_schema():
    return json.loads((ROOT / "schemas" / "patch.schema.json").read_text())
