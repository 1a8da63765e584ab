# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Blender-as-a-module for the extension's tests: venvs holding only bpy (bpy 4.x/5.0 pin numpy<2, the
# server needs numpy 2), one per Blender Python. 4.2 LTS is opt-in: `make bpy-env SHOTPASS_BPY_42=1`.
BPY_DIR := plugins/blender
BPY_VENVS := $(BPY_DIR)/.venv-bpy-5.0 $(BPY_DIR)/.venv-bpy-5.3 $(BPY_DIR)/.venv-bpy-4.2

.PHONY: demo test lint stubs bpy-env nuke-vendor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[server,diffusion,ray,pipeline,opencue,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shotpass demo --out demo-out

bpy-env: $(STAMP)
	$(BPY_DIR)/dev/make_bpy_env.sh $(BPY_DIR)/.venv-bpy-5.0 5.0.1 3.11
	$(BPY_DIR)/dev/make_bpy_env.sh $(BPY_DIR)/.venv-bpy-5.3 5.3.0 3.13
	if [ -n "$${SHOTPASS_BPY_42:-}" ]; then $(BPY_DIR)/dev/make_bpy_env.sh $(BPY_DIR)/.venv-bpy-4.2 4.2.23 3.11; fi
	PYTHON=$(PY) $(BPY_DIR)/build_wheels.sh

# grpcio + protobuf + their dependencies for Nuke 14/15/16's Pythons on this platform (cached in
# ~/.cache/shotpass/nuke-wheels; a second run does not touch the network). All platforms: drop --host.
nuke-vendor: $(STAMP)
	$(PY) plugins/nuke/vendor_wheels.py --host

test: $(STAMP) bpy-env nuke-vendor
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

stubs: $(STAMP)
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) $(BPY_VENVS) demo-out .pytest_cache plugins/blender/wheels plugins/blender/dist plugins/nuke/vendor
