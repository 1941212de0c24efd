# Bootstrap, build and test detrack_ros on a machine without a ROS 2 install.
# On a robot with ROS 2 from apt, use rosdep + colcon directly (see README.md).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BUILD_DIR ?= build
WS := $(BUILD_DIR)/ws
ROOT := $(CURDIR)
VENV_ABS := $(abspath $(VENV))
WS_ABS := $(abspath $(WS))

# The wheels install ROS's share/ and lib/ into the environment's prefix: point ament and CMake
# there, and put the environment first on PATH so colcon, cmake helpers and pytest are its own.
RUN := env PATH="$(VENV_ABS)/bin:$$PATH" VIRTUAL_ENV="$(VENV_ABS)" \
	AMENT_PREFIX_PATH="$(VENV_ABS)$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH}" \
	CMAKE_PREFIX_PATH="$(VENV_ABS)$${CMAKE_PREFIX_PATH:+:$$CMAKE_PREFIX_PATH}"
COLCON_BUILD_ARGS := --cmake-args -DPython3_EXECUTABLE=$(VENV_ABS)/bin/python -DBUILD_TESTING=OFF
COLCON_TEST_ARGS := --packages-select detrack_ros --event-handlers console_direct+ \
	--return-code-on-test-failure

.PHONY: setup workspace build test test-fast demo data data-photos2 clean distclean constraints help

help:
	@echo "make setup    create/refresh .venv (ROS 2 Kilted wheels, PyTorch, OpenCV, ...)"
	@echo "make build    colcon build in $(WS) (this package + vision_msgs when needed)"
	@echo "make test     setup, build, colcon test; fails when any test fails"
	@echo "make test-fast  the ROS-free tests not marked slow: pytest from $(VENV), no build"
	@echo "              (about a minute; PYTEST_ARGS='-x -k tracker' passes options on)"
	@echo "make demo     the tracker node over DDS on a replayed sequence: AO, FPS, latency, video"
	@echo "              (DEMO_ARGS='--video clip.mp4 --box x,y,w,h' for your own video)"
	@echo "make data     fetch and index the training image pool into $(BUILD_DIR)/data/image_pool"
	@echo "              (Debian packages via apt-get download + dpkg-deb -x; about 700 MB)"
	@echo "              and the pool with training photographs into .../image_pool_photos"
	@echo "make data-photos2  also the pool with more photographs (needs libedje-bin's edje_decc)"
	@echo "make clean    remove $(BUILD_DIR)/;  make distclean: also remove $(VENV)/"

setup:
	@if [ -z "$(PYTHON)" ]; then \
		echo "make setup: error: no python3.11 or python3 on PATH; set PYTHON=/path/to/python3.11" >&2; \
		exit 1; fi
	@"$(PYTHON)" tools/bootstrap.py --venv "$(VENV)"

# The workspace links the sources in; vision_msgs is built from interfaces/ only when the
# environment cannot import a real one (a sourced ROS install provides it).
workspace: setup
	@mkdir -p $(WS)/src
	@touch $(BUILD_DIR)/COLCON_IGNORE
	@ln -sfn "$(ROOT)" $(WS)/src/detrack_ros
	@if $(RUN) "$(VENV_ABS)/bin/python" -c "import vision_msgs.msg" 2>/dev/null; then \
		echo "vision_msgs: using the installed package"; rm -f $(WS)/src/vision_msgs; \
	else \
		echo "vision_msgs: not installed, building interfaces/vision_msgs"; \
		ln -sfn "$(ROOT)/interfaces/vision_msgs" $(WS)/src/vision_msgs; \
	fi

build: workspace
	cd $(WS) && $(RUN) colcon build $(COLCON_BUILD_ARGS)

test: build
	cd $(WS) && $(RUN) colcon test $(COLCON_TEST_ARGS); status=$$?; \
		$(RUN) colcon test-result --verbose --test-result-base build/detrack_ros \
		&& exit $$status

# The quick check while editing: plain pytest from the environment, the package imported from
# the source tree, nothing built. Leaves out test/ros/ (never imported: --without-ros, see
# test/conftest.py), the tests marked slow and those needing a GPU; `make test` runs them all.
test-fast:
	@test -x "$(VENV_ABS)/bin/python" || \
		{ echo "make test-fast: no $(VENV); run make setup first" >&2; exit 1; }
	env PYTHONPATH="$(ROOT)" "$(VENV_ABS)/bin/python" -m pytest -q \
		--without-ros -m "not slow and not ros and not gpu" $(PYTEST_ARGS) test

# The node runs from the built workspace as it would on a robot: vision_msgs and the package
# come from build/ws/install.
demo: build
	@$(RUN) bash -c 'source "$(WS_ABS)/install/setup.bash" && \
		ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST} \
		python -m detrack_ros.demo --output "$(ROOT)/build/demo" $(DEMO_ARGS)'

# The training image pool: Debian packages unpacked (not installed) and indexed; not needed by
# `make test` (the tests build tiny pools of their own). Then the pool with photographs of real
# scenes added for training, whose other packages are linked from the first.
data: setup
	$(RUN) "$(VENV_ABS)/bin/python" -m detrack_model.cli.synth fetch-sources \
		--cache "$(BUILD_DIR)/data/image_pool" $(DATA_ARGS)
	$(RUN) "$(VENV_ABS)/bin/python" -m detrack_model.cli.synth fetch-sources --set photos \
		--cache "$(BUILD_DIR)/data/image_pool_photos" --reuse "$(BUILD_DIR)/data/image_pool" \
		$(DATA_ARGS)

# The pool with more photographs (Enlightenment's wallpapers, decompiled by edje_decc from
# libedje-bin), for training/prune_tiny_finetune_photos2.yaml; not part of `make data`.
data-photos2: data
	@command -v edje_decc >/dev/null || { echo "make data-photos2 needs edje_decc:" \
		"apt-get install libedje-bin"; exit 1; }
	$(RUN) "$(VENV_ABS)/bin/python" -m detrack_model.cli.synth fetch-sources --set photos2 \
		--cache "$(BUILD_DIR)/data/image_pool_photos2" \
		--reuse "$(BUILD_DIR)/data/image_pool_photos" $(DATA_ARGS)

clean:
	rm -rf $(BUILD_DIR)

distclean: clean
	rm -rf $(VENV)

# Re-pin every package after a change to requirements/*.txt.
constraints: setup
	@{ echo "# Every package of the environment, pinned: \`make setup\` installs exactly these versions."; \
	   echo "# Regenerate after changing requirements/*.txt: make constraints"; \
	   "$(VENV_ABS)/bin/pip" freeze --all --exclude pip | sed -E 's/^(torch==[^+]*)\+.*/\1/'; \
	 } > requirements/constraints.txt.new && mv requirements/constraints.txt.new requirements/constraints.txt
