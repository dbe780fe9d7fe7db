"""The expert catalogue and its plugins.

A third-party expert (``tests/plugins/osler_spots``: its own target ``dense_spots``, class names and classical
detector backend) is installed the way pip installs one: a ``.dist-info`` folder with an ``entry_points.txt`` in
the ``osler.experts`` group, on ``sys.path``.  With no edit anywhere else in Osler, the new target is then
accepted by the tool contracts, counted and located by the built-in planner, compared with a prior study and
asked about by voice.  A plugin that fails to load is reported in one log line and skipped.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from experts.catalogue import BUILTIN, ENTRY_POINT_GROUP, catalogue
from tools.detection import DetectRequest
from tools.targets import BLOOD_CELLS, TARGET_KINDS, class_names, targets

PLUGINS = Path(__file__).resolve().parent / "plugins"
CURRENT, PRIOR = "hannover_cxr/png/c9280a30.png", "hannover_cxr/png/b343e657.png"  # one patient, 2 days apart
ENTRY_POINTS = f"""[{ENTRY_POINT_GROUP}]
spots = osler_spots:expert
missing = osler_no_such_plugin:expert
not_an_entry = osler_spots:SPOTS
clash = osler_clash:expert
"""


@pytest.fixture
def spots_plugin(tmp_path, caplog):
    """Install the plugin (a dist-info with entry points, its package on sys.path) and rebuild the catalogue;
    uninstall and rebuild afterwards."""
    dist = tmp_path / "osler_spots-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: osler-spots\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    added = [str(tmp_path), str(PLUGINS)]
    sys.path[:0] = added
    try:
        with caplog.at_level(logging.ERROR, logger="experts.catalogue"):
            cat = catalogue(reload=True)
        yield cat
    finally:
        for p in added:
            sys.path.remove(p)
        for name in ("osler_spots", "osler_clash"):
            sys.modules.pop(name, None)
        catalogue(reload=True)


def test_builtin_catalogue_is_the_one_source_of_the_targets():
    cat = catalogue()
    assert [e.name for e in BUILTIN] == ["blood_cells", "polyp", "lung"] == list(cat.entries)[:3]
    assert BLOOD_CELLS.labels == ("RBC", "WBC", "Platelets")
    assert dict(TARGET_KINDS)["polyp"] == ("endoscopy",) and "prompt" in TARGET_KINDS
    assert class_names()["WBC"] == "white blood cells (WBC)" and class_names(plural=False)["Platelets"] == "platelet"
    assert cat.auto_prompt("polyp") == "polyp" and cat.auto_prompt("lung") is None
    assert cat.compare_target("chest_xray") == "lung" and cat.compare_target("fundus") is None
    for entry in BUILTIN:  # default weights and the model card ship with the package
        assert all(w.exists() for w in entry.weights) and entry.card is not None and entry.card.exists()
    assert "detect:blood_cells" in cat.registry() and "segment:lung" in cat.registry()


def test_plugin_is_catalogued_and_broken_ones_are_skipped_in_one_line_each(spots_plugin, caplog):
    cat = spots_plugin
    entry = cat.entry("dense_spots")
    assert entry is not None and entry.source == "plugin spots (osler-spots)"
    assert list(cat.entries)[:3] == ["blood_cells", "polyp", "lung"]  # built-ins first, unchanged
    errors = [r.getMessage() for r in caplog.get_records("setup") if r.levelno == logging.ERROR]
    assert len(errors) == 3 and len(cat.skipped) == 3
    assert errors[0].startswith("Osler plugin 'missing' (osler_no_such_plugin:expert) skipped: ModuleNotFoundError")
    assert errors[1].startswith("Osler plugin 'not_an_entry' (osler_spots:SPOTS) skipped: TypeError: an osler.experts entry "
                                 "point must give ExpertEntry objects, got ['TargetSpec']")
    assert errors[2] == ("Osler plugin 'clash' (osler_clash:expert) skipped: ValueError: target(s) ['polyp'] "
                         "already exist")
    assert cat.entry("polyp").source == "osler"  # the built-in polyp expert stays
    # the contracts accept the new target and offer it to a planner
    assert DetectRequest(target="dense_spots").target == "dense_spots"
    assert DetectRequest.model_json_schema()["properties"]["target"]["enum"] == ["blood_cells", "polyp", "dense_spots"]
    assert targets()["dense_spots"].kinds == ("chest_xray",) and TARGET_KINDS["dense_spots"] == ("chest_xray",)
    from experts.registry import default_registry

    assert [b.name for b in default_registry()["detect:dense_spots"]] == ["opencv"]


def test_a_spec_must_be_consistent():
    from tools.targets import TargetClass, TargetSpec

    with pytest.raises(ValidationError, match="not a regular expression"):
        TargetClass(label="x", singular="x", plural="xs", pattern="(unclosed")
    with pytest.raises(ValidationError, match="comparing instances needs a detector"):
        TargetSpec(name="x", description="d", kinds=("other",), tasks=("segment",), noun="x", compare="instances")
    with pytest.raises(ValidationError, match="an organ is outlined, not detected"):
        TargetSpec(name="x", description="d", kinds=("other",), tasks=("detect",), noun="x", organ=True)
    with pytest.raises(ValueError, match="tasks"):  # a spec with a detector task and no detector backend
        from experts.catalogue import ExpertEntry

        ExpertEntry(TargetSpec(name="x", description="d", kinds=("other",), tasks=("detect",), noun="x"))


def test_without_the_plugin_its_target_is_refused():
    assert "dense_spots" not in catalogue().entries
    with pytest.raises(ValidationError, match="Input should be 'blood_cells' or 'polyp'"):
        DetectRequest(target="dense_spots")


@pytest.fixture
def spots_assistant(spots_plugin, settings):
    from agent.runner import Assistant
    from experts.registry import ExpertPool

    return Assistant(settings, pool=ExpertPool(settings))  # a pool built after the plugin was installed


def _direct_count(path: Path) -> int:
    """The plugin's backend on the image, outside Osler, with the tool's duplicate merging."""
    from experts.geometry import dedup_boxes
    from experts.imaging import load_image
    from osler_spots import DenseSpotDetector

    raw = DenseSpotDetector().predict(load_image(path, "current"))
    return len(dedup_boxes(raw.boxes, raw.scores, raw.labels, 0.5))


def test_plugin_target_is_counted_and_located(spots_assistant, data_dir):
    a = spots_assistant
    s = a.new_session()
    s.load("current", data_dir / CURRENT)
    r = a.ask(s, "How many dense spots are there?")
    assert [c.name for c in r.tool_calls] == ["image_info", "count"] and all(c.ok for c in r.tool_calls)
    assert r.tool_calls[1].args["target"] == "dense_spots" and r.tool_calls[1].backend == "opencv"
    n = _direct_count(data_dir / CURRENT)
    assert n > 0 and r.value == n and r.unit == "dense spots"
    assert f"I count {n} dense spot" in r.answer and r.grounding.ok

    r = a.ask(s, "Where are the dense spots?")
    assert [c.name for c in r.tool_calls][-1] == "detect" and r.tool_calls[-1].args["target"] == "dense_spots"
    assert f"Found {n} dense spot" in r.answer


def test_plugin_target_is_compared_with_a_prior(spots_assistant, data_dir):
    a = spots_assistant
    s = a.new_session()
    s.load("current", data_dir / CURRENT)
    s.load("prior", data_dir / PRIOR)
    n = _direct_count(data_dir / CURRENT)
    r = a.ask(s, "Compare the dense spots with the prior study")
    call = r.tool_calls[-1]
    assert call.name == "compare_with_prior" and call.args["target"] == "dense_spots" and call.ok
    assert call.result["status"] == "compared", call.result.get("reason")
    [change] = call.result["count_changes"]
    assert change["label"] == "dense spot" and 0 < change["current"] <= n  # within the common field of view
    assert change["prior"] > 0 and change["delta"] == change["current"] - change["prior"]
    assert "dense spot" in r.answer and f"dense spot {change['prior']} -> {change['current']}" in r.answer


def test_plugin_target_is_asked_about_by_voice(spots_assistant, data_dir):
    from voice.commands import jsgf_grammar, parse_command, vocabulary

    cmd = parse_command("Osler, how many dense spots are visible?".removeprefix("Osler, "))
    assert cmd is not None and cmd.intent == "count" and cmd.slots == {"count_target": "dense spots"}
    assert cmd.question == "How many dense spots are visible?"
    assert {"dense", "spots"} <= vocabulary() and "(dense spots)" in jsgf_grammar()
    s = spots_assistant.new_session()
    s.load("current", data_dir / CURRENT)
    r = spots_assistant.ask(s, cmd.question)
    assert r.tool_calls[-1].name == "count" and r.tool_calls[-1].args["target"] == "dense_spots"
    assert r.value == _direct_count(data_dir / CURRENT)


def test_builtin_voice_and_parser_vocabulary_unchanged_without_plugins():
    from agent.builtin.intents import TARGET_PATTERNS, parse_question
    from voice.commands import parse_command

    assert {t for _, t, _ in TARGET_PATTERNS} == {"blood_cells", "polyp", "lung", "lesion"}
    assert parse_command("how many dense spots are visible") is None
    assert parse_question("How many dense spots are there?")[0].target is None


def test_plugin_target_is_in_the_llm_planners_vocabulary(spots_plugin):
    """The local LLM planner offers a plugin target to the model (schema enum, prompt) and anchors it by the
    plugin's own question pattern: no edit outside the plugin."""
    from agent.planners.llm_plan import Plan, plan_schema, plan_to_intents, system_prompt

    enum = plan_schema()["properties"]["steps"]["items"]["properties"]["target"]["enum"]
    assert "dense_spots" in enum and "white_cells" in enum
    assert "dense_spots (" in system_prompt()
    step = {"tool": "count", "target": "dense_spots", "yes_no": False, "about": "none", "which": "all"}
    plan = Plan.model_validate({"in_scope": True, "steps": [step]})
    intents, _ = plan_to_intents(plan, "tally the radiodense spots please", None)
    assert intents[0].action == "count" and intents[0].target == "dense_spots"
    assert plan_to_intents(plan, "tally the nodules please", None)[0][0].action == "unknown"
